// End-to-end checks of build-bundle.mjs, render.mjs and lambda-standin.mjs with a real
// Chromium. Run: npm test   (needs /usr/bin/chromium or REMOTION_BROWSER_EXECUTABLE;
// skipped without one). Everything stays on 127.0.0.1. Takes about a minute or two
// on 2 cores.
import {getVideoMetadata} from '@remotion/renderer';
import assert from 'node:assert/strict';
import {execFileSync, spawn} from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';
import {fileURLToPath} from 'node:url';
import zlib from 'node:zlib';
import {defaultBrowserExecutable} from '../lib/render-local.mjs';

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const browser = defaultBrowserExecutable();
const skip = browser ? false : 'no Chromium (set REMOTION_BROWSER_EXECUTABLE or install chromium)';

// ---------------------------------------------------------------- helpers

const CRC_TABLE = Array.from({length: 256}, (_, n) => {
	let c = n;
	for (let k = 0; k < 8; k++) {
		c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
	}
	return c >>> 0;
});
const crc32 = (buf) => {
	let c = 0xffffffff;
	for (const b of buf) {
		c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
	}
	return (c ^ 0xffffffff) >>> 0;
};
const chunk = (type, data) => {
	const len = Buffer.alloc(4);
	len.writeUInt32BE(data.length);
	const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
	const crc = Buffer.alloc(4);
	crc.writeUInt32BE(crc32(td));
	return Buffer.concat([len, td, crc]);
};
/** An RGB PNG with a diagonal two-colour gradient. */
const makePng = (w, h, [r1, g1, b1], [r2, g2, b2]) => {
	const rows = [];
	for (let y = 0; y < h; y++) {
		const row = Buffer.alloc(1 + w * 3);
		for (let x = 0; x < w; x++) {
			const t = (x / w + y / h) / 2;
			row[1 + x * 3] = Math.round(r1 + (r2 - r1) * t);
			row[2 + x * 3] = Math.round(g1 + (g2 - g1) * t);
			row[3 + x * 3] = Math.round(b1 + (b2 - b1) * t);
		}
		rows.push(row);
	}
	const ihdr = Buffer.alloc(13);
	ihdr.writeUInt32BE(w, 0);
	ihdr.writeUInt32BE(h, 4);
	ihdr[8] = 8; // bit depth
	ihdr[9] = 2; // RGB
	return Buffer.concat([
		Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
		chunk('IHDR', ihdr),
		chunk('IDAT', zlib.deflateSync(Buffer.concat(rows))),
		chunk('IEND', Buffer.alloc(0)),
	]);
};

/** Runs render.mjs with a request; resolves {code, lines, events, stderr, proc}. */
const runRender = (request, {env = {}, onLine} = {}) => {
	const proc = spawn(process.execPath, [path.join(ROOT, 'render.mjs')], {
		env: {...process.env, ...env},
		stdio: ['pipe', 'pipe', 'pipe'],
	});
	const lines = [];
	let stdout = '';
	let stderr = '';
	proc.stdout.on('data', (d) => {
		stdout += d;
		let i;
		while ((i = stdout.indexOf('\n')) >= 0) {
			const line = stdout.slice(0, i);
			stdout = stdout.slice(i + 1);
			const obj = JSON.parse(line); // stdout must carry JSON lines only
			lines.push({at: Date.now(), obj});
			onLine?.(obj, proc);
		}
	});
	proc.stderr.on('data', (d) => {
		stderr += d;
	});
	proc.stdin.end(typeof request === 'string' ? request : JSON.stringify(request));
	const done = new Promise((resolve) => {
		proc.on('close', (code) => {
			resolve({code, lines, events: lines.map((l) => l.obj), stderr, proc});
		});
	});
	return {proc, done};
};

const finalEvent = (events) => events[events.length - 1];

const checkProtocol = (res) => {
	const events = res.events;
	assert.ok(events.length > 0, 'no output lines');
	const finals = events.filter((e) => e.event !== 'progress');
	assert.equal(finals.length, 1, `exactly one final line, got ${JSON.stringify(finals)}`);
	assert.equal(finalEvent(events), finals[0], 'the final line is the last line');
};

// ---------------------------------------------------------------- fixtures

let work;
let bundleDir;
let imageServer;
let imageBase;

before(async () => {
	if (skip) {
		return;
	}
	work = fs.mkdtempSync(path.join(os.tmpdir(), 'vidfarm-remotion-test-'));
	bundleDir = path.join(work, 'bundle');
	const printed = execFileSync(process.execPath, [path.join(ROOT, 'build-bundle.mjs'), bundleDir], {
		encoding: 'utf8',
		stdio: ['ignore', 'pipe', 'ignore'],
	});
	assert.equal(printed.trim(), bundleDir);
	const images = {
		'/a.png': makePng(320, 180, [220, 60, 30], [30, 60, 220]),
		'/b.png': makePng(200, 200, [20, 160, 80], [250, 230, 40]),
	};
	imageServer = http.createServer((req, res) => {
		const body = images[req.url];
		if (!body) {
			res.writeHead(404);
			res.end();
			return;
		}
		res.writeHead(200, {'content-type': 'image/png', 'content-length': body.length});
		res.end(body);
	});
	await new Promise((r) => imageServer.listen(0, '127.0.0.1', r));
	imageBase = `http://127.0.0.1:${imageServer.address().port}`;
});

after(() => {
	imageServer?.close();
	if (work) {
		fs.rmSync(work, {recursive: true, force: true});
	}
});

const slideshowProps = () => ({
	width: 640,
	height: 360,
	fps: 30,
	title: 'Smoke test',
	scenes: [
		{imageUrl: `${imageBase}/a.png`, text: 'First', durationSeconds: 1},
		{
			imageUrl: `${imageBase}/b.png`,
			text: 'Second, top left',
			durationSeconds: 1,
			layout: {zone: 'top', align: 'left', maxWidthPercent: 50},
		},
	],
});

const localRequest = (over) => ({
	mode: 'local',
	serveUrl: bundleDir,
	browserExecutable: browser,
	concurrency: 1,
	timeoutMs: 60000,
	...over,
});

// ---------------------------------------------------------------- local

describe('render.mjs local', {skip}, () => {
	test('Slideshow renders h264 with throttled progress', async () => {
		const outputPath = path.join(work, 'slideshow.mp4');
		const res = await runRender(localRequest({compositionId: 'Slideshow', inputProps: slideshowProps(), outputPath})).done;
		checkProtocol(res);
		assert.equal(res.code, 0, res.stderr);
		const done = finalEvent(res.events);
		assert.deepEqual(
			{...done, sizeBytes: undefined},
			{event: 'done', outputPath, width: 640, height: 360, fps: 30, durationInFrames: 60, sizeBytes: undefined},
		);
		assert.equal(done.sizeBytes, fs.statSync(outputPath).size);
		const progress = res.lines.filter((l) => l.obj.event === 'progress');
		assert.equal(progress[progress.length - 1].obj.progress, 1);
		// At most ~4 per second (forced lines aside: the first and the last).
		const seconds = (progress[progress.length - 1].at - progress[0].at) / 1000;
		assert.ok(progress.length <= 4 * seconds + 3, `${progress.length} progress lines in ${seconds} s`);
		const meta = await getVideoMetadata(outputPath, {logLevel: 'error'});
		assert.equal(meta.codec, 'h264');
		assert.equal(meta.width, 640);
		assert.equal(meta.height, 360);
		assert.equal(meta.fps, 30);
		assert.ok(Math.abs(meta.durationInSeconds - 2) < 0.1, `duration ${meta.durationInSeconds}`);
	});

	test('TitleCard renders', async () => {
		const outputPath = path.join(work, 'title.mp4');
		const res = await runRender(
			localRequest({
				compositionId: 'TitleCard',
				inputProps: {text: 'Hello', subtitle: 'world', color: '#7c2d12', durationSeconds: 1, width: 480, height: 480, fps: 24},
				outputPath,
			}),
		).done;
		checkProtocol(res);
		assert.equal(res.code, 0, res.stderr);
		assert.equal(finalEvent(res.events).durationInFrames, 24);
		const meta = await getVideoMetadata(outputPath, {logLevel: 'error'});
		assert.equal(meta.width, 480);
		assert.equal(meta.fps, 24);
	});

	const invalid = [
		['unknown composition', localRequest({compositionId: 'Nope', inputProps: {}, outputPath: '/tmp/x.mp4'}), /Could not find composition with ID Nope/],
		['missing scenes', localRequest({compositionId: 'Slideshow', inputProps: {title: 'x'}, outputPath: '/tmp/x.mp4'}), /scenes must be a non-empty array/],
		[
			'bad layout zone',
			localRequest({
				compositionId: 'Slideshow',
				inputProps: {scenes: [{imageUrl: 'http://127.0.0.1:1/a.png', durationSeconds: 1, layout: {zone: 'middle', align: 'left', maxWidthPercent: 50}}]},
				outputPath: '/tmp/x.mp4',
			}),
			/scenes\[0\]\.layout\.zone must be one of/,
		],
		['TitleCard without durationSeconds', localRequest({compositionId: 'TitleCard', inputProps: {text: 'x'}, outputPath: '/tmp/x.mp4'}), /durationSeconds must be/],
		['not JSON', 'not json', /not valid JSON/],
		['relative outputPath', localRequest({compositionId: 'TitleCard', inputProps: {text: 'x', durationSeconds: 1}, outputPath: 'x.mp4'}), /outputPath must be an absolute path/],
	];
	for (const [name, request, message] of invalid) {
		test(`invalid_request: ${name}`, async () => {
			const res = await runRender(request).done;
			checkProtocol(res);
			assert.equal(res.code, 1);
			const e = finalEvent(res.events);
			assert.equal(e.event, 'error');
			assert.equal(e.kind, 'invalid_request');
			assert.match(e.message, message);
		});
	}

	test('an image that does not load fails the render (kind failed)', async () => {
		const res = await runRender(
			localRequest({
				compositionId: 'Slideshow',
				inputProps: {scenes: [{imageUrl: `${imageBase}/missing.png`, durationSeconds: 0.5}]},
				outputPath: path.join(work, 'missing.mp4'),
				timeoutMs: 15000,
			}),
		).done;
		checkProtocol(res);
		assert.equal(res.code, 1);
		assert.equal(finalEvent(res.events).kind, 'failed');
		assert.match(finalEvent(res.events).message, /missing\.png/);
		assert.equal(fs.existsSync(path.join(work, 'missing.mp4')), false);
	});

	test('SIGTERM mid-render exits promptly and leaves no Chromium', async () => {
		// A private TMPDIR: Chromium's --user-data-dir lives under it, which lets us
		// find this render's browser processes.
		const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vfs-'));
		const props = slideshowProps();
		props.scenes.forEach((s) => {
			s.durationSeconds = 10;
		});
		let killedAt = null;
		const outputPath = path.join(work, 'cancelled.mp4');
		const res = await runRender(localRequest({compositionId: 'Slideshow', inputProps: props, outputPath}), {
			env: {TMPDIR: tmp},
			onLine: (obj, proc) => {
				if (killedAt === null && obj.event === 'progress' && obj.renderedFrames >= 3) {
					killedAt = Date.now();
					proc.kill('SIGTERM');
				}
			},
		}).done;
		const took = Date.now() - killedAt;
		checkProtocol(res);
		assert.ok(killedAt !== null, `never saw rendering progress: ${JSON.stringify(res.events)} ${res.stderr.slice(-2000)}`);
		assert.ok(took < 3000, `took ${took} ms to exit`);
		assert.equal(res.code, 1);
		assert.deepEqual(finalEvent(res.events), {event: 'error', kind: 'failed', message: 'render cancelled (SIGTERM)'});
		// Chromium (its --user-data-dir is under tmp) and Remotion's ffmpeg (writing
		// .cancelled.<pid>.partial.mp4) must be gone within 2 s of the exit.
		const leftovers = () =>
			execFileSync('ps', ['-eo', 'stat=,args='], {encoding: 'utf8'})
				.split('\n')
				.filter((l) => (l.includes(tmp) || l.includes('.cancelled.')) && !l.trim().startsWith('Z'));
		for (let i = 0; i < 20 && leftovers().length > 0; i++) {
			await new Promise((r) => setTimeout(r, 100));
		}
		assert.deepEqual(leftovers(), [], 'processes left behind');
		assert.deepEqual(fs.readdirSync(tmp), [], 'temp files left behind');
		fs.rmSync(tmp, {recursive: true, force: true});
		assert.equal(fs.existsSync(outputPath), false);
	});
});

// ---------------------------------------------------------------- lambda via the stand-in

describe('render.mjs lambda via lambda-standin.mjs', {skip}, () => {
	let standin;
	let endpoint;
	before(async () => {
		standin = spawn(process.execPath, [path.join(ROOT, 'lambda-standin.mjs'), '0'], {stdio: ['ignore', 'pipe', 'inherit']});
		endpoint = await new Promise((resolve, reject) => {
			standin.stdout.once('data', (d) => resolve(JSON.parse(String(d)).endpoint));
			standin.once('exit', (c) => reject(new Error(`stand-in exited ${c}`)));
		});
	});
	after(() => standin?.kill('SIGTERM'));

	const env = () => ({
		// AWS_ENDPOINT_URL (all services) rather than only AWS_ENDPOINT_URL_LAMBDA, so
		// nothing the client might call leaves the loopback.
		AWS_ENDPOINT_URL: endpoint,
		AWS_ACCESS_KEY_ID: 'test',
		AWS_SECRET_ACCESS_KEY: 'test',
	});
	const lambdaRequest = (over) => ({
		mode: 'lambda',
		region: 'us-east-1',
		functionName: 'remotion-render-test',
		serveUrl: bundleDir,
		pollMs: 300,
		...over,
	});

	test('renderMediaOnLambda + getRenderProgress + download', async () => {
		const outputPath = path.join(work, 'lambda.mp4');
		const res = await runRender(lambdaRequest({compositionId: 'Slideshow', inputProps: slideshowProps(), outputPath}), {env: env()}).done;
		checkProtocol(res);
		assert.equal(res.code, 0, res.stderr);
		const done = finalEvent(res.events);
		assert.equal(done.event, 'done');
		assert.equal(done.width, 640);
		assert.equal(done.fps, 30);
		assert.equal(done.durationInFrames, 60);
		assert.equal(done.sizeBytes, fs.statSync(outputPath).size);
		assert.ok(res.events.some((e) => e.event === 'progress' && e.stage === 'rendering'));
		assert.equal(res.events[res.events.length - 2].progress, 1);
	});

	test('unknown composition is an invalid_request', async () => {
		const res = await runRender(lambdaRequest({compositionId: 'Nope', inputProps: {}, outputPath: path.join(work, 'x.mp4')}), {env: env()}).done;
		checkProtocol(res);
		assert.equal(res.code, 1);
		assert.equal(finalEvent(res.events).kind, 'invalid_request');
	});
});
