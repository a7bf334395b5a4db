// Input-prop validation shared by the Remotion bundle (calculateMetadata) and by
// render.mjs (which checks props in Node before it starts Chromium).
//
// Plain JavaScript on purpose: Node imports it without a TypeScript step, and the
// bundler imports it from the .tsx files.

/** Marker every validation message starts with; render.mjs maps it to kind "invalid_request". */
export const INVALID_PROPS_PREFIX = 'Invalid input props';

export class InvalidPropsError extends Error {
	constructor(compositionId, field, problem) {
		super(`${INVALID_PROPS_PREFIX} for ${compositionId}: ${field} ${problem}`);
		this.name = 'InvalidPropsError';
		this.field = field;
	}
}

export const DEFAULT_WIDTH = 1280;
export const DEFAULT_HEIGHT = 720;
export const DEFAULT_FPS = 30;
const MAX_DIMENSION = 4096;
const MAX_TOTAL_SECONDS = 3600;
const MAX_SCENES = 500;
const ZONES = ['top', 'center', 'bottom'];
const ALIGNS = ['left', 'center', 'right'];

const show = (value) => {
	if (value === undefined) {
		return 'undefined';
	}
	const s = JSON.stringify(value);
	return s.length > 60 ? `${s.slice(0, 57)}...` : s;
};

const isPlainObject = (v) =>
	typeof v === 'object' && v !== null && !Array.isArray(v);

const checkObject = (id, props) => {
	if (!isPlainObject(props)) {
		throw new InvalidPropsError(id, 'inputProps', `must be a JSON object (got ${show(props)})`);
	}
};

const optionalDimension = (id, props, field, fallback) => {
	const v = props[field];
	if (v === undefined || v === null) {
		return fallback;
	}
	if (!Number.isInteger(v) || v < 16 || v > MAX_DIMENSION || v % 2 !== 0) {
		throw new InvalidPropsError(
			id,
			field,
			`must be an even integer between 16 and ${MAX_DIMENSION} (h264/yuv420p needs even sizes) (got ${show(v)})`,
		);
	}
	return v;
};

const optionalFps = (id, props) => {
	const v = props.fps;
	if (v === undefined || v === null) {
		return DEFAULT_FPS;
	}
	if (typeof v !== 'number' || !Number.isFinite(v) || v < 1 || v > 120) {
		throw new InvalidPropsError(id, 'fps', `must be a number between 1 and 120 (got ${show(v)})`);
	}
	return v;
};

const optionalString = (id, obj, field, path) => {
	const v = obj[field];
	if (v === undefined || v === null) {
		return undefined;
	}
	if (typeof v !== 'string') {
		throw new InvalidPropsError(id, path, `must be a string (got ${show(v)})`);
	}
	return v;
};

const duration = (id, obj, field, path) => {
	const v = obj[field];
	if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > MAX_TOTAL_SECONDS) {
		throw new InvalidPropsError(
			id,
			path,
			`must be a number of seconds > 0 and <= ${MAX_TOTAL_SECONDS} (got ${show(v)})`,
		);
	}
	return v;
};

const imageUrl = (id, obj, path) => {
	const v = obj.imageUrl;
	if (typeof v !== 'string' || v.length === 0) {
		throw new InvalidPropsError(id, path, `must be a non-empty string (got ${show(v)})`);
	}
	if (!/^(https?:\/\/|data:image\/)/i.test(v)) {
		throw new InvalidPropsError(
			id,
			path,
			`must be an http(s) URL or a data:image/... URL (got ${show(v)})`,
		);
	}
	return v;
};

const audioUrl = (id, obj, path) => {
	const v = obj.audioUrl;
	if (v === undefined || v === null) {
		return undefined;
	}
	if (typeof v !== 'string' || !/^(https?:\/\/|data:audio\/)/i.test(v)) {
		throw new InvalidPropsError(id, path, `must be an http(s) URL or a data:audio/... URL (got ${show(v)})`);
	}
	return v;
};

const layout = (id, scene, path) => {
	const v = scene.layout;
	if (v === undefined || v === null) {
		return {zone: 'bottom', align: 'center', maxWidthPercent: 80};
	}
	if (!isPlainObject(v)) {
		throw new InvalidPropsError(id, path, `must be an object (got ${show(v)})`);
	}
	if (!ZONES.includes(v.zone)) {
		throw new InvalidPropsError(id, `${path}.zone`, `must be one of ${ZONES.join(', ')} (got ${show(v.zone)})`);
	}
	if (!ALIGNS.includes(v.align)) {
		throw new InvalidPropsError(id, `${path}.align`, `must be one of ${ALIGNS.join(', ')} (got ${show(v.align)})`);
	}
	const m = v.maxWidthPercent;
	if (typeof m !== 'number' || !Number.isFinite(m) || m < 10 || m > 100) {
		throw new InvalidPropsError(id, `${path}.maxWidthPercent`, `must be a number between 10 and 100 (got ${show(m)})`);
	}
	return {zone: v.zone, align: v.align, maxWidthPercent: m};
};

/**
 * Checks Slideshow props and returns them normalised (defaults filled in).
 * Throws InvalidPropsError naming the offending field.
 */
export const validateSlideshowProps = (props) => {
	const id = 'Slideshow';
	checkObject(id, props);
	const width = optionalDimension(id, props, 'width', DEFAULT_WIDTH);
	const height = optionalDimension(id, props, 'height', DEFAULT_HEIGHT);
	const fps = optionalFps(id, props);
	const title = optionalString(id, props, 'title', 'title');
	if (!Array.isArray(props.scenes) || props.scenes.length === 0) {
		throw new InvalidPropsError(id, 'scenes', `must be a non-empty array (got ${show(props.scenes)})`);
	}
	if (props.scenes.length > MAX_SCENES) {
		throw new InvalidPropsError(id, 'scenes', `must have at most ${MAX_SCENES} entries (got ${props.scenes.length})`);
	}
	const scenes = props.scenes.map((scene, i) => {
		const path = `scenes[${i}]`;
		if (!isPlainObject(scene)) {
			throw new InvalidPropsError(id, path, `must be an object (got ${show(scene)})`);
		}
		return {
			imageUrl: imageUrl(id, scene, `${path}.imageUrl`),
			audioUrl: audioUrl(id, scene, `${path}.audioUrl`),
			text: optionalString(id, scene, 'text', `${path}.text`),
			durationSeconds: duration(id, scene, 'durationSeconds', `${path}.durationSeconds`),
			layout: layout(id, scene, `${path}.layout`),
		};
	});
	const total = scenes.reduce((a, s) => a + s.durationSeconds, 0);
	if (total > MAX_TOTAL_SECONDS) {
		throw new InvalidPropsError(id, 'scenes', `add up to ${total} s, more than the ${MAX_TOTAL_SECONDS} s limit`);
	}
	return {width, height, fps, title, scenes};
};

/**
 * Checks TitleCard props and returns them normalised (defaults filled in).
 */
export const validateTitleCardProps = (props) => {
	const id = 'TitleCard';
	checkObject(id, props);
	const width = optionalDimension(id, props, 'width', DEFAULT_WIDTH);
	const height = optionalDimension(id, props, 'height', DEFAULT_HEIGHT);
	const fps = optionalFps(id, props);
	if (typeof props.text !== 'string' || props.text.trim().length === 0) {
		throw new InvalidPropsError(id, 'text', `must be a non-empty string (got ${show(props.text)})`);
	}
	const subtitle = optionalString(id, props, 'subtitle', 'subtitle');
	const color = optionalString(id, props, 'color', 'color');
	if (color !== undefined && (color.length > 64 || /[;{}<>]/.test(color))) {
		throw new InvalidPropsError(id, 'color', `must be a CSS color such as "#1e3a8a" or "rebeccapurple" (got ${show(color)})`);
	}
	const durationSeconds = duration(id, props, 'durationSeconds', 'durationSeconds');
	return {width, height, fps, text: props.text, subtitle, color, durationSeconds};
};

/** Validators by composition id; render.mjs uses this to fail fast without a browser. */
export const validators = {
	Slideshow: validateSlideshowProps,
	TitleCard: validateTitleCardProps,
};

/** Frames for a number of seconds, at least 1. */
export const secondsToFrames = (seconds, fps) =>
	Math.max(1, Math.round(seconds * fps));
