#!/usr/bin/env node
// The process the Vidfarm host spawns for one Remotion render.
//
// stdin:  ONE JSON request (see README.md), e.g.
//   {"mode":"local","serveUrl":"/abs/build","compositionId":"Slideshow",
//    "inputProps":{...},"outputPath":"/abs/out.mp4","browserExecutable":"/usr/bin/chromium",
//    "concurrency":1,"timeoutMs":120000}
// stdout: JSON lines only:
//   {"event":"progress","progress":0.42,"stage":"rendering","renderedFrames":10,"encodedFrames":8}
//   {"event":"started","externalId":"{\"renderId\":..,\"bucketName\":..}"}   (Lambda, once started:
//     the host stores it; a later attempt sends it back as "resume" and polls that render
//     instead of starting, and paying for, another)
//   ... then exactly one of
//   {"event":"done","outputPath":"...","width":..,"height":..,"fps":..,"durationInFrames":..,"sizeBytes":..}  (exit 0)
//   {"event":"error","kind":"invalid_request"|"failed","message":"..."}                                     (exit 1)
// stderr: human-readable logs (Remotion, browser console).
// SIGTERM/SIGINT: cancels the render, kills Chromium, exits 1 with an error line.

// First: console.log & co. go to stderr, so stdout carries the protocol only.
import './lib/stdout-guard.mjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {Readable} from 'node:stream';
import {pipeline} from 'node:stream/promises';
import {
	InvalidRequestError,
	OUTPUT_EXTENSIONS,
	defaultBrowserExecutable,
	errorMessage,
	isInvalidRequestError,
	renderLocally,
} from './lib/render-local.mjs';
import {validators} from './src/props.js';

// Everything Remotion and Chromium write to the temp dir (browser profile, frames,
// downloaded assets) goes into one private directory that is removed on exit, also
// after a cancellation (Remotion's own cleanup does not run then).
// Its path must stay short: Chromium puts a unix socket under $TMPDIR
// (.org.chromium.Chromium.XXXXXX/SingletonSocket, ~46 more characters, 108 max) and
// dies with SIGTRAP at launch when the path is too long.
const tmpBase = os.tmpdir().length <= 48 ? os.tmpdir() : '/tmp';
// A SIGKILLed run cannot clean up: remove the temp dirs of runs that are gone.
const sweepStaleRunDirs = () => {
	for (const name of fs.readdirSync(tmpBase)) {
		if (!name.startsWith('vfr-')) {
			continue;
		}
		const dir = path.join(tmpBase, name);
		try {
			const pid = Number(fs.readFileSync(path.join(dir, '.owner-pid'), 'utf8'));
			process.kill(pid, 0);
		} catch (e) {
			// ESRCH: the owner is gone. ENOENT: no pid file (yet, or never) - leave it
			// unless it is old.
			const stale =
				e.code === 'ESRCH' || (e.code === 'ENOENT' && Date.now() - fs.statSync(dir).mtimeMs > 24 * 3600 * 1000);
			if (stale) {
				fs.rmSync(dir, {recursive: true, force: true});
			}
		}
	}
};
try {
	sweepStaleRunDirs();
} catch {
	// Best effort.
}
const RUN_TMP = fs.mkdtempSync(path.join(tmpBase, 'vfr-'));
fs.writeFileSync(path.join(RUN_TMP, '.owner-pid'), String(process.pid));
process.env.TMPDIR = RUN_TMP;
process.on('exit', () => {
	try {
		fs.rmSync(RUN_TMP, {recursive: true, force: true});
	} catch {
		// Best effort.
	}
});

const MAX_REQUEST_BYTES = 64 * 1024 * 1024;
const PROGRESS_INTERVAL_MS = 250;

// ---------------------------------------------------------------- output

let finished = false;
const writeLine = (obj) => {
	process.stdout.write(`${JSON.stringify(obj)}\n`);
};
/** Writes the final line once and exits. */
const finish = (obj, code) => {
	if (finished) {
		return;
	}
	finished = true;
	process.stdout.write(`${JSON.stringify(obj)}\n`, () => process.exit(code));
	// In case the stdout callback never comes (reader gone).
	setTimeout(() => process.exit(code), 1000).unref();
};
const fail = (kind, message) => finish({event: 'error', kind, message}, 1);

/** Progress lines, at most one per PROGRESS_INTERVAL_MS unless forced. */
const makeProgress = () => {
	let last = 0;
	return (p, force = false) => {
		if (finished) {
			return;
		}
		const now = Date.now();
		if (!force && now - last < PROGRESS_INTERVAL_MS) {
			return;
		}
		last = now;
		writeLine({
			event: 'progress',
			progress: Math.round(Math.min(1, Math.max(0, p.progress)) * 10000) / 10000,
			stage: p.stage,
			renderedFrames: p.renderedFrames ?? 0,
			encodedFrames: p.encodedFrames ?? 0,
		});
	};
};

// ---------------------------------------------------------------- request

const readRequest = () =>
	new Promise((resolve, reject) => {
		let buf = '';
		let done = false;
		const settle = (fn, v) => {
			if (!done) {
				done = true;
				fn(v);
			}
		};
		const parse = () => {
			try {
				return {ok: true, value: JSON.parse(buf)};
			} catch (e) {
				return {ok: false, error: e};
			}
		};
		process.stdin.setEncoding('utf8');
		process.stdin.on('data', (chunk) => {
			buf += chunk;
			if (buf.length > MAX_REQUEST_BYTES) {
				settle(reject, new InvalidRequestError(`request on stdin is larger than ${MAX_REQUEST_BYTES} bytes`));
				process.stdin.destroy();
				return;
			}
			// A host may keep stdin open: a complete JSON document ending a line is enough.
			if (chunk.includes('\n')) {
				const r = parse();
				if (r.ok) {
					process.stdin.pause();
					settle(resolve, r.value);
				}
			}
		});
		process.stdin.on('end', () => {
			if (buf.trim() === '') {
				settle(reject, new InvalidRequestError('no request on stdin (expected one JSON object)'));
				return;
			}
			const r = parse();
			if (r.ok) {
				settle(resolve, r.value);
			} else {
				settle(reject, new InvalidRequestError(`request on stdin is not valid JSON: ${r.error.message}`));
			}
		});
		process.stdin.on('error', (e) => settle(reject, e));
	});

const bad = (msg) => {
	throw new InvalidRequestError(msg);
};
const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
const reqString = (req, field) => {
	const v = req[field];
	if (typeof v !== 'string' || v.length === 0) {
		bad(`request.${field} must be a non-empty string (got ${JSON.stringify(v)})`);
	}
	return v;
};
const optInt = (req, field, min, max, fallback) => {
	const v = req[field];
	if (v === undefined || v === null) {
		return fallback;
	}
	if (!Number.isInteger(v) || v < min || v > max) {
		bad(`request.${field} must be an integer between ${min} and ${max} (got ${JSON.stringify(v)})`);
	}
	return v;
};
const optString = (req, field, allowed) => {
	const v = req[field];
	if (v === undefined || v === null) {
		return undefined;
	}
	if (typeof v !== 'string' || (allowed && !allowed.includes(v))) {
		bad(`request.${field} must be ${allowed ? `one of ${allowed.join(', ')}` : 'a string'} (got ${JSON.stringify(v)})`);
	}
	return v;
};

const X264_PRESETS = ['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow', 'slower', 'veryslow', 'placebo'];

/** Fields both modes share. */
const parseCommon = (req) => {
	if (!isObject(req)) {
		bad('request must be a JSON object');
	}
	const mode = req.mode ?? 'local';
	if (mode !== 'local' && mode !== 'lambda') {
		bad(`request.mode must be "local" or "lambda" (got ${JSON.stringify(req.mode)})`);
	}
	const serveUrl = reqString(req, 'serveUrl');
	const compositionId = reqString(req, 'compositionId');
	const inputProps = req.inputProps ?? {};
	if (!isObject(inputProps)) {
		bad('request.inputProps must be a JSON object');
	}
	const outputPath = reqString(req, 'outputPath');
	if (!path.isAbsolute(outputPath)) {
		bad(`request.outputPath must be an absolute path (got ${JSON.stringify(outputPath)})`);
	}
	if (!OUTPUT_EXTENSIONS.includes(path.extname(outputPath).toLowerCase())) {
		bad(`request.outputPath must end in ${OUTPUT_EXTENSIONS.join(', ')} (h264) (got ${JSON.stringify(outputPath)})`);
	}
	const timeoutMs = optInt(req, 'timeoutMs', 1000, 3600000, 120000);
	const deadlineMs = optInt(req, 'deadlineMs', 1000, 24 * 3600000, undefined);
	// Fail fast, without a browser, on props of the compositions this package defines.
	// (The bundle checks them again in calculateMetadata.) A template's own bundle
	// (`templateBundle: true`) defines its own compositions, whatever their ids.
	if (req.templateBundle !== true && validators[compositionId]) {
		validators[compositionId](inputProps);
	}
	return {mode, serveUrl, compositionId, inputProps, outputPath, timeoutMs, deadlineMs};
};

// ---------------------------------------------------------------- cancellation

let cancelCurrent = null;
let stopping = false;
const stop = async (reason) => {
	if (finished || stopping) {
		return;
	}
	stopping = true;
	console.error(`render.mjs: ${reason}; cancelling`);
	// The final line goes out synchronously first: Remotion's own SIGINT listener
	// exits the process (code 130) right after ours returns.
	finished = true;
	fs.writeSync(1, `${JSON.stringify({event: 'error', kind: 'failed', message: reason})}\n`);
	// Whatever happens, be gone within a few seconds.
	setTimeout(() => process.exit(1), 3000).unref();
	try {
		await cancelCurrent?.();
	} catch (e) {
		console.error('render.mjs: error while cancelling:', e);
	}
	process.exit(1);
};
// An error thrown outside the render's own steps (an event of Chromium's connection, a timer
// inside Remotion) would end Node with no error line, so the host would see only "exit 1". It
// is logged in full; the render's own steps usually fail right after with the error that
// matters, and report it. If they have not within a few seconds, this error is the failure.
const STRAY_ERROR_GRACE_MS = 5000;
const strayError = (err) => {
	console.error('render.mjs: an error outside the render\'s steps:', err?.stack ?? err);
	setTimeout(() => {
		if (!stopping) {
			fail(isInvalidRequestError(err) ? 'invalid_request' : 'failed', errorMessage(err));
		}
	}, STRAY_ERROR_GRACE_MS);
};
process.on('uncaughtException', strayError);
process.on('unhandledRejection', strayError);
process.on('SIGTERM', () => stop('render cancelled (SIGTERM)'));
process.on('SIGINT', () => stop('render cancelled (SIGINT)'));

// ---------------------------------------------------------------- local

const runLocal = async (common, req) => {
	const browserExecutable = req.browserExecutable ?? defaultBrowserExecutable();
	if (browserExecutable !== null && typeof browserExecutable !== 'string') {
		bad('request.browserExecutable must be a string');
	}
	if (browserExecutable && !fs.existsSync(browserExecutable)) {
		bad(`request.browserExecutable ${JSON.stringify(browserExecutable)} does not exist`);
	}
	const concurrency = optInt(req, 'concurrency', 1, 32, 1);
	const crf = optInt(req, 'crf', 0, 51, undefined);
	const x264Preset = optString(req, 'x264Preset', X264_PRESETS);
	const chromeMode = optString(req, 'chromeMode', ['headless-shell', 'chrome-for-testing']);
	const gl = optString(req, 'gl', ['angle', 'angle-egl', 'egl', 'swangle', 'swiftshader', 'vulkan']);
	const {serveUrl} = common;
	if (!/^https?:\/\//.test(serveUrl) && !fs.existsSync(path.join(serveUrl, 'index.html'))) {
		bad(`request.serveUrl ${JSON.stringify(serveUrl)} is neither an http(s) URL nor a bundle directory with index.html (run build-bundle.mjs)`);
	}
	const progress = makeProgress();
	const result = await renderLocally({
		...common,
		browserExecutable,
		concurrency,
		crf,
		x264Preset,
		chromeMode,
		gl: gl ?? (process.env.REMOTION_GL || undefined),
		onProgress: (p) => progress(p, p.stage === 'preparing'),
		registerCancel: (fn) => {
			cancelCurrent = fn;
		},
	});
	progress({progress: 1, stage: 'done', renderedFrames: result.durationInFrames, encodedFrames: result.durationInFrames}, true);
	return result;
};

// ---------------------------------------------------------------- lambda

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const withTimeout = (promise, ms, what) =>
	Promise.race([
		promise,
		new Promise((_, reject) => setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms).unref()),
	]);

const download = async (url, outputPath, signal) => {
	const dir = path.dirname(outputPath);
	fs.mkdirSync(dir, {recursive: true});
	const ext = path.extname(outputPath);
	const tmp = path.join(dir, `.${path.basename(outputPath, ext)}.${process.pid}.download${ext}`);
	try {
		const res = await fetch(url, {signal});
		if (!res.ok || !res.body) {
			throw new Error(`downloading the rendered video failed: HTTP ${res.status} from ${url.split('?')[0]}`);
		}
		await pipeline(Readable.fromWeb(res.body), fs.createWriteStream(tmp));
		fs.renameSync(tmp, outputPath);
	} catch (e) {
		fs.rmSync(tmp, {force: true});
		throw e;
	}
	return fs.statSync(outputPath).size;
};

// `resume`: the external id of a render an earlier attempt started (the "started" line).
const parseResume = (req) => {
	if (req.resume === undefined || req.resume === null) {
		return null;
	}
	let parsed;
	try {
		parsed = typeof req.resume === 'string' ? JSON.parse(req.resume) : req.resume;
	} catch {
		throw new InvalidRequestError('resume: not JSON');
	}
	if (typeof parsed?.renderId !== 'string' || typeof parsed?.bucketName !== 'string') {
		throw new InvalidRequestError('resume: needs renderId and bucketName strings');
	}
	return {renderId: parsed.renderId, bucketName: parsed.bucketName};
};

const runLambda = async (common, req) => {
	const region = reqString(req, 'region');
	const functionName = reqString(req, 'functionName');
	const pollMs = optInt(req, 'pollMs', 100, 60000, 1000);
	const privacy = optString(req, 'privacy', ['public', 'private', 'no-acl']) ?? 'public';
	const framesPerLambda = optInt(req, 'framesPerLambda', 4, 1000000, undefined);
	const concurrencyPerLambda = optInt(req, 'concurrencyPerLambda', 1, 32, undefined);
	const maxRetries = optInt(req, 'maxRetries', 0, 10, 1);
	const bucketName = optString(req, 'bucketName');
	const crf = optInt(req, 'crf', 0, 51, undefined);
	const x264Preset = optString(req, 'x264Preset', X264_PRESETS);

	const lambda = await import('@remotion/lambda-client');
	const {getVideoMetadata} = await import('@remotion/renderer');
	const progress = makeProgress();
	progress({progress: 0, stage: 'preparing', renderedFrames: 0, encodedFrames: 0}, true);

	const abort = new AbortController();
	let started = null;
	cancelCurrent = async () => {
		abort.abort();
		if (started) {
			// Best effort: needs S3 access and a render started with enableCancellation.
			await withTimeout(
				lambda.cancelRenderOnLambda({region, functionName, renderId: started.renderId, bucketName: started.bucketName}),
				2000,
				'cancelRenderOnLambda',
			).catch((e) => console.error(`render.mjs: could not cancel the Lambda render: ${e.message}`));
		}
	};

	const resume = parseResume(req);
	if (resume) {
		started = resume;
		console.error(`render.mjs: resuming Lambda render ${started.renderId} in bucket ${started.bucketName}`);
	} else {
		started = await lambda.renderMediaOnLambda({
			region,
			functionName,
			serveUrl: common.serveUrl,
			composition: common.compositionId,
			inputProps: common.inputProps,
			codec: 'h264',
			pixelFormat: 'yuv420p',
			imageFormat: 'jpeg',
			muted: false,
			privacy,
			maxRetries,
			framesPerLambda,
			concurrencyPerLambda,
			forceBucketName: bucketName,
			crf,
			x264Preset,
			timeoutInMilliseconds: common.timeoutMs,
			enableCancellation: true,
			overwrite: true,
			logLevel: 'warn',
		});
		writeLine({event: 'started', externalId: JSON.stringify({renderId: started.renderId, bucketName: started.bucketName})});
		console.error(`render.mjs: Lambda render ${started.renderId} started in bucket ${started.bucketName}`);
	}

	let consecutiveFailures = 0;
	let last = null;
	for (;;) {
		if (abort.signal.aborted) {
			throw new Error('render cancelled');
		}
		await sleep(pollMs);
		if (abort.signal.aborted) {
			throw new Error('render cancelled');
		}
		let p;
		try {
			p = await lambda.getRenderProgress({
				region,
				functionName,
				renderId: started.renderId,
				bucketName: started.bucketName,
				logLevel: 'warn',
			});
			consecutiveFailures = 0;
		} catch (e) {
			consecutiveFailures += 1;
			console.error(`render.mjs: getRenderProgress failed (${consecutiveFailures}/5): ${e.message}`);
			if (consecutiveFailures >= 5) {
				throw e;
			}
			continue;
		}
		last = p;
		if (p.fatalErrorEncountered) {
			const first = p.errors?.find((e) => e.isFatal) ?? p.errors?.[0];
			const err = new Error(first ? `${first.message}${first.explanation ? ` (${first.explanation})` : ''}` : 'Lambda render failed');
			throw err;
		}
		const range = p.renderMetadata?.frameRange;
		const totalFrames = range ? range[1] - range[0] + 1 : null;
		const renderedFrames = p.framesRendered ?? 0;
		if (p.done) {
			break;
		}
		progress({
			// 1.0 is kept for "downloaded".
			progress: Math.min(0.99, p.overallProgress ?? 0),
			stage: totalFrames !== null && renderedFrames >= totalFrames ? 'encoding' : 'rendering',
			renderedFrames,
			encodedFrames: p.encodingStatus?.framesEncoded ?? 0,
		});
	}

	let url = last.outputFile;
	if (privacy !== 'public' && last.outBucket && last.outKey) {
		url = await lambda.presignUrl({
			region,
			bucketName: last.outBucket,
			objectKey: last.outKey,
			expiresInSeconds: 900,
		});
	}
	if (!url) {
		throw new Error('the Lambda render finished without an output file URL');
	}
	progress({progress: 0.99, stage: 'downloading', renderedFrames: last.framesRendered ?? 0, encodedFrames: last.encodingStatus?.framesEncoded ?? 0}, true);
	const sizeBytes = await download(url, common.outputPath, abort.signal);
	const meta = await getVideoMetadata(common.outputPath, {logLevel: 'error'});
	const range = last.renderMetadata?.frameRange;
	const durationInFrames = range ? range[1] - range[0] + 1 : Math.round(meta.durationInSeconds * meta.fps);
	progress({progress: 1, stage: 'done', renderedFrames: durationInFrames, encodedFrames: durationInFrames}, true);
	return {
		outputPath: common.outputPath,
		width: last.renderMetadata?.dimensions?.width ?? meta.width,
		height: last.renderMetadata?.dimensions?.height ?? meta.height,
		fps: meta.fps,
		durationInFrames,
		sizeBytes,
	};
};

// ---------------------------------------------------------------- main

const main = async () => {
	const req = await readRequest();
	const common = parseCommon(req);
	if (common.deadlineMs) {
		setTimeout(() => stop(`render exceeded deadlineMs (${common.deadlineMs} ms)`), common.deadlineMs).unref();
	}
	const result = common.mode === 'lambda' ? await runLambda(common, req) : await runLocal(common, req);
	finish({event: 'done', ...result}, 0);
};

main().catch((err) => {
	if (stopping) {
		return; // stop() reports.
	}
	if (isInvalidRequestError(err)) {
		fail('invalid_request', errorMessage(err));
		return;
	}
	console.error(err?.stack ?? err);
	fail('failed', errorMessage(err));
});
