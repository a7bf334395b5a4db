// One local render with @remotion/renderer: open Chromium once, select the
// composition (which runs calculateMetadata, i.e. validates the props), render
// h264/yuv420p to a temporary file beside the output, then rename it into place.
// Shared by render.mjs ("mode": "local") and lambda-standin.mjs.
import {
	makeCancelSignal,
	openBrowser,
	renderMedia,
	selectComposition,
} from '@remotion/renderer';
import fs from 'node:fs';
import path from 'node:path';
import {INVALID_PROPS_PREFIX} from '../src/props.js';

/** An error the caller should report as kind "invalid_request". */
// Remotion (4.0.x) registers each <Composition> through a React state update and
// reads the list from a ref that the queued updates fill in only on the next
// render. On a loaded machine the page can report itself ready in between, so a
// bundle with two compositions sometimes answers "Could not find composition with
// ID TitleCard. Available compositions: Slideshow". A fresh page sees the full
// list; a composition that truly is not there fails the same way every time.
const NOT_REGISTERED_YET = /Could not find composition with ID/;
const SELECT_RETRY_DELAYS_MS = [300, 1500];

async function selectRegisteredComposition(options, isCancelled) {
	for (let attempt = 0; ; attempt++) {
		try {
			return await selectComposition(options);
		} catch (err) {
			const delay = SELECT_RETRY_DELAYS_MS[attempt];
			if (delay === undefined || isCancelled() || !NOT_REGISTERED_YET.test(String(err?.message ?? err))) {
				throw err;
			}
			console.error(`render-local: ${options.id} not registered yet, selecting again in ${delay} ms`);
			await new Promise((resolve) => setTimeout(resolve, delay));
		}
	}
}

// Chromium started under load now and then dies before Remotion can reach it ("Failed to
// launch the browser process! ... Closed with null signal: SIGSEGV", seen once in a CI run of
// 161 renders). Nothing has been rendered or spent then, so starting it again repeats nothing;
// a browser that cannot start at all fails the same way three times and is reported.
const LAUNCH_FAILED = /Failed to launch the browser process/;
const LAUNCH_RETRY_DELAYS_MS = [500, 2000];

async function openBrowserWithRetries(options, isCancelled) {
	for (let attempt = 0; ; attempt++) {
		try {
			return await openBrowser('chrome', options);
		} catch (err) {
			const delay = LAUNCH_RETRY_DELAYS_MS[attempt];
			if (delay === undefined || isCancelled() || !LAUNCH_FAILED.test(String(err?.message ?? err))) {
				throw err;
			}
			console.error(`render-local: the browser did not start (${String(err?.message ?? err).split('\n')[0]}), starting it again in ${delay} ms`);
			await new Promise((resolve) => setTimeout(resolve, delay));
		}
	}
}

export class InvalidRequestError extends Error {
	constructor(message) {
		super(message);
		this.name = 'InvalidRequestError';
	}
}

export const OUTPUT_EXTENSIONS = ['.mp4', '.mov', '.mkv'];

/** True when an error from Remotion means the request itself was bad. */
export const isInvalidRequestError = (err) => {
	if (err instanceof InvalidRequestError || err?.name === 'InvalidPropsError') {
		return true;
	}
	const msg = String(err?.message ?? err);
	return (
		msg.includes(INVALID_PROPS_PREFIX) ||
		/Could not find composition with ID/i.test(msg) ||
		/No composition with the ID/i.test(msg)
	);
};

/** The first useful lines of an error, without Remotion's long stack dumps. */
export const errorMessage = (err) => {
	const raw = String(err?.message ?? err ?? 'unknown error');
	const lines = raw.split('\n').filter((l) => !/^\s+at /.test(l));
	const text = lines.join('\n').trim().replace(/^((Error|InvalidPropsError): )+/, '');
	return text.length > 4000 ? `${text.slice(0, 4000)}...` : text;
};

/** Default Chromium: $REMOTION_BROWSER_EXECUTABLE, else Debian's /usr/bin/chromium if present. */
export const defaultBrowserExecutable = () => {
	if (process.env.REMOTION_BROWSER_EXECUTABLE) {
		return process.env.REMOTION_BROWSER_EXECUTABLE;
	}
	for (const candidate of ['/usr/bin/chromium', '/usr/bin/chromium-browser']) {
		if (fs.existsSync(candidate)) {
			return candidate;
		}
	}
	return null;
};

const LOG_LEVEL = process.env.REMOTION_LOG_LEVEL ?? 'warn';

/**
 * Renders one composition locally.
 *
 * opts: serveUrl, compositionId, inputProps, outputPath (absolute, .mp4/.mov/.mkv),
 *   browserExecutable, concurrency, timeoutMs (Remotion's per-delayRender timeout,
 *   e.g. an image that does not load), crf, x264Preset, chromeMode, gl (Remotion's
 *   chromiumOptions.gl: "angle", "swangle", "swiftshader", ...; default Remotion's),
 *   onProgress({progress, stage, renderedFrames, encodedFrames}),
 *   onComposition(composition), registerCancel(fn) (gives the caller a function that
 *   cancels the render and closes Chromium).
 * Resolves to {outputPath, width, height, fps, durationInFrames, sizeBytes}.
 */
export const renderLocally = async (opts) => {
	const {
		serveUrl,
		compositionId,
		inputProps,
		outputPath,
		browserExecutable = defaultBrowserExecutable(),
		concurrency = 1,
		timeoutMs = 120000,
		crf = null,
		x264Preset = null,
		chromeMode = 'headless-shell',
		gl = process.env.REMOTION_GL || undefined,
		onProgress = () => {},
		onComposition = () => {},
		registerCancel = () => {},
	} = opts;

	const ext = path.extname(outputPath).toLowerCase();
	const dir = path.dirname(outputPath);
	fs.mkdirSync(dir, {recursive: true});
	const tmpOut = path.join(dir, `.${path.basename(outputPath, ext)}.${process.pid}.partial${ext}`);

	const {cancelSignal, cancel} = makeCancelSignal();
	let browser = null;
	let cancelled = false;
	let closing = null;
	const closeBrowser = () => {
		if (!browser) {
			return Promise.resolve();
		}
		closing ??= browser.close({silent: true}).catch(() => {});
		return closing;
	};
	registerCancel(async () => {
		cancelled = true;
		cancel();
		await closeBrowser();
		fs.rmSync(tmpOut, {force: true});
	});

	// Remotion's default OpenGL setting measured fastest with Debian's chromium on a
	// GPU-less machine (3 s 720p slideshow: ~9.5 s vs ~11 s "angle"/"swiftshader", ~13 s "swangle").
	const chromiumOptions = gl === undefined ? {} : {gl};
	const onBrowserLog = (log) => {
		console.error(`[browser ${log.type}] ${log.text}`);
	};

	try {
		const t0 = Date.now();
		const took = (what) => console.error(`render-local: ${what} after ${Date.now() - t0} ms`);
		onProgress({progress: 0, stage: 'preparing', renderedFrames: 0, encodedFrames: 0});
		browser = await openBrowserWithRetries(
			{browserExecutable, chromiumOptions, chromeMode, logLevel: LOG_LEVEL},
			() => cancelled,
		);
		if (cancelled) {
			throw new Error('render cancelled');
		}
		const composition = await selectRegisteredComposition({
			serveUrl,
			id: compositionId,
			inputProps,
			puppeteerInstance: browser,
			browserExecutable,
			chromiumOptions,
			chromeMode,
			timeoutInMilliseconds: timeoutMs,
			logLevel: LOG_LEVEL,
			onBrowserLog,
		}, () => cancelled);
		took(`browser opened and ${compositionId} selected (${composition.width}x${composition.height}, ${composition.fps} fps, ${composition.durationInFrames} frames)`);
		onComposition(composition);
		if (cancelled) {
			throw new Error('render cancelled');
		}
		await renderMedia({
			composition,
			serveUrl,
			codec: 'h264',
			pixelFormat: 'yuv420p',
			imageFormat: 'jpeg',
			// Limited-range BT.709 (plain yuv420p). Without it, JPEG frames give
			// full-range yuvj420p, which some players and platforms mishandle.
			colorSpace: 'bt709',
			// A composition's <Audio> (narration, music) is mixed in as AAC; one without any
			// gets no audio track at all.
			muted: false,
			inputProps,
			outputLocation: tmpOut,
			overwrite: true,
			puppeteerInstance: browser,
			browserExecutable,
			chromiumOptions,
			chromeMode,
			concurrency,
			crf: crf ?? undefined,
			x264Preset: x264Preset ?? undefined,
			timeoutInMilliseconds: timeoutMs,
			cancelSignal,
			logLevel: LOG_LEVEL,
			onBrowserLog,
			onProgress: (p) => {
				const stage =
					p.renderedFrames < composition.durationInFrames
						? 'rendering'
						: p.stitchStage === 'muxing'
							? 'muxing'
							: 'encoding';
				onProgress({
					progress: p.progress,
					stage,
					renderedFrames: p.renderedFrames,
					encodedFrames: p.encodedFrames,
				});
			},
		});
		took('rendered and encoded');
		fs.renameSync(tmpOut, outputPath);
		const sizeBytes = fs.statSync(outputPath).size;
		return {
			outputPath,
			width: composition.width,
			height: composition.height,
			fps: composition.fps,
			durationInFrames: composition.durationInFrames,
			sizeBytes,
		};
	} catch (err) {
		fs.rmSync(tmpOut, {force: true});
		if (cancelled) {
			const e = new Error('render cancelled');
			e.cancelled = true;
			throw e;
		}
		throw err;
	} finally {
		await closeBrowser();
	}
};
