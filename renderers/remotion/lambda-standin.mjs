#!/usr/bin/env node
// A loopback stand-in for a Remotion Lambda function, for tests of render.mjs
// "mode": "lambda" without AWS.
//
//   node lambda-standin.mjs [port]        (default 0 = any free port)
//   -> stdout: {"port":12345,"endpoint":"http://127.0.0.1:12345"}
//
// Point the client at it with the AWS SDK's standard endpoint override, plus
// dummy credentials (the SDK signs requests; the stand-in ignores signatures):
//   AWS_ENDPOINT_URL_LAMBDA=http://127.0.0.1:12345 AWS_ACCESS_KEY_ID=test \
//   AWS_SECRET_ACCESS_KEY=test node render.mjs < lambda-request.json
//
// It speaks the Lambda Invoke wire format (POST /2015-03-31/functions/<name>/invocations)
// for the two routines the client uses:
//   "start"  (renderMediaOnLambda) -> renders locally with @remotion/renderer, in the
//            background, into a temp dir; answers {type:"success", renderId, bucketName}
//   "status" (getRenderProgress)   -> the GenericRenderProgress object of
//            @remotion/serverless-client 4.0.527; when done, outputFile is
//            http://127.0.0.1:<port>/renders/<renderId>/out.mp4, served by this process.
// GET /standin/renders lists the renders started so far (for tests).
// Not covered: S3 (props over ~194 KB, which the client uploads to S3; privacy
// "private" outputs, which need a presigned S3 URL; cancelRenderOnLambda), the
// other routines (info, compositions, still, launch, renderer), webhooks, and the
// splitting into chunks across functions (one local render per request).
//
// Env: STANDIN_FUNCTION_NAME (optional; other function names get AWS's 404
// ResourceNotFoundException), REMOTION_BROWSER_EXECUTABLE (default /usr/bin/chromium).
import './lib/stdout-guard.mjs';
import {randomBytes} from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {NoReactInternals} from 'remotion/no-react';
import {VERSION} from 'remotion/version';
import {errorMessage, renderLocally} from './lib/render-local.mjs';

// Short path on purpose: Chromium's SingletonSocket goes under $TMPDIR (see render.mjs).
const WORK = fs.mkdtempSync(path.join(os.tmpdir().length <= 48 ? os.tmpdir() : '/tmp', 'vfl-'));
process.env.TMPDIR = WORK;
process.on('exit', () => fs.rmSync(WORK, {recursive: true, force: true}));

const onlyFunction = process.env.STANDIN_FUNCTION_NAME || null;
const renders = new Map();
let port = 0;

const log = (...a) => console.error('[lambda-standin]', ...a);

// ------------------------------------------------------------ routines

const functionError = (message) => {
	const e = new Error(message);
	e.unhandled = true;
	return e;
};

const checkVersion = (params, apiName) => {
	if (params.version !== VERSION) {
		throw functionError(
			`Version mismatch: When calling ${apiName}, you passed a function which has the version ${VERSION}, but the @remotion/lambda package you used to invoke the function has version ${params.version}.`,
		);
	}
};

const decodeInputProps = (serialized) => {
	if (serialized?.type === 'payload') {
		return NoReactInternals.deserializeJSONWithSpecialTypes(serialized.payload);
	}
	if (serialized?.type === 'bucket-url') {
		throw new Error('lambda-standin: input props stored in S3 (over ~194 KB) are not supported');
	}
	throw new Error(`lambda-standin: unexpected inputProps encoding ${JSON.stringify(serialized)?.slice(0, 100)}`);
};

const makeErrorInfo = (err) => ({
	type: 'renderer',
	message: errorMessage(err),
	name: err?.name ?? 'Error',
	stack: String(err?.stack ?? ''),
	frame: null,
	chunk: null,
	isFatal: true,
	attempt: 1,
	willRetry: false,
	totalAttempts: 1,
	tmpDir: null,
	s3Location: '',
	explanation: null,
});

const start = (params, {functionName, region}) => {
	checkVersion(params, 'renderMediaOnLambda()');
	if (params.codec !== 'h264') {
		throw new Error(`lambda-standin renders only codec "h264" (got ${JSON.stringify(params.codec)})`);
	}
	const inputProps = decodeInputProps(params.inputProps);
	const renderId = randomBytes(5).toString('hex');
	const bucketName = params.bucketName ?? 'remotionlambda-standin';
	const dir = path.join(WORK, 'renders', renderId);
	fs.mkdirSync(dir, {recursive: true});
	const now = Date.now();
	const r = {
		renderId,
		bucketName,
		functionName,
		region,
		params,
		outputPath: path.join(dir, 'out.mp4'),
		started: now,
		timeoutTimestamp: now + (params.timeoutInMilliseconds ?? 30000) + 15 * 60 * 1000,
		composition: null,
		compositionValidated: null,
		progress: 0,
		renderedFrames: 0,
		encodedFrames: 0,
		renderedDoneAt: null,
		finishedAt: null,
		sizeBytes: null,
		error: null,
		cancel: null,
	};
	renders.set(renderId, r);
	log(`start ${renderId}: ${params.composition} from ${params.serveUrl}`);
	renderLocally({
		serveUrl: params.serveUrl,
		compositionId: params.composition,
		inputProps,
		outputPath: r.outputPath,
		concurrency: params.concurrencyPerLambda ?? 1,
		timeoutMs: params.timeoutInMilliseconds ?? 30000,
		crf: params.crf ?? null,
		x264Preset: params.x264Preset ?? null,
		onComposition: (c) => {
			r.composition = c;
			r.compositionValidated = Date.now();
		},
		onProgress: (p) => {
			r.progress = p.progress;
			r.renderedFrames = p.renderedFrames;
			r.encodedFrames = p.encodedFrames;
			if (r.composition && p.renderedFrames >= r.composition.durationInFrames && r.renderedDoneAt === null) {
				r.renderedDoneAt = Date.now();
			}
		},
		registerCancel: (fn) => {
			r.cancel = fn;
		},
	}).then(
		(res) => {
			r.finishedAt = Date.now();
			r.sizeBytes = res.sizeBytes;
			r.progress = 1;
			log(`render ${renderId} done in ${r.finishedAt - r.started} ms (${res.sizeBytes} bytes)`);
		},
		(err) => {
			r.error = err;
			r.finishedAt = Date.now();
			log(`render ${renderId} failed: ${errorMessage(err)}`);
		},
	);
	return {type: 'success', bucketName, renderId};
};

const status = (params) => {
	checkVersion(params, 'getRenderProgress()');
	const r = renders.get(params.renderId);
	if (!r) {
		// The real function throws this (an unhandled function error).
		throw functionError(`No render with ID ${params.renderId} found in bucket ${params.bucketName}`);
	}
	const c = r.composition;
	const total = c?.durationInFrames ?? null;
	const done = r.sizeBytes !== null;
	const now = Date.now();
	const outKey = `renders/${r.renderId}/out.mp4`;
	return {
		type: 'success',
		renderId: r.renderId,
		bucket: r.bucketName,
		done,
		overallProgress: done ? 1 : r.progress,
		chunks: done ? 1 : 0,
		encodingStatus: {
			framesEncoded: r.encodedFrames,
			combinedFrames: done ? (total ?? 0) : 0,
			timeToCombine: null,
		},
		costs: {
			accruedSoFar: 0,
			displayCost: '$0.0000',
			currency: 'USD',
			disclaimer: 'lambda-standin: rendered locally, no AWS cost',
		},
		renderMetadata: c
			? {
					type: 'video',
					imageFormat: r.params.imageFormat ?? 'jpeg',
					muted: Boolean(r.params.muted),
					frameRange: [0, c.durationInFrames - 1],
					everyNthFrame: 1,
					codec: 'h264',
					siteId: String(r.params.serveUrl),
					startedDate: r.started,
					totalChunks: 1,
					estimatedTotalLambdaInvokations: 1,
					estimatedRenderLambdaInvokations: 1,
					compositionId: c.id,
					audioCodec: null,
					inputProps: r.params.inputProps,
					framesPerLambda: c.durationInFrames,
					memorySizeInMb: 0,
					functionName: r.functionName,
					rendererFunctionName: r.functionName,
					lambdaVersion: VERSION,
					region: r.region,
					renderId: r.renderId,
					outName: undefined,
					outputFileIsConditional: false,
					privacy: r.params.privacy ?? 'public',
					deleteAfter: null,
					numberOfGifLoops: null,
					audioBitrate: null,
					downloadBehavior: r.params.downloadBehavior ?? {type: 'play-in-browser'},
					metadata: null,
					dimensions: {width: c.width, height: c.height},
					scale: 1,
				}
			: null,
		outputFile: done ? `http://127.0.0.1:${port}/${outKey}` : null,
		outKey: done ? outKey : null,
		outBucket: done ? r.bucketName : null,
		timeToFinish: done ? r.finishedAt - r.started : null,
		errors: r.error ? [makeErrorInfo(r.error)] : [],
		fatalErrorEncountered: r.error !== null,
		currentTime: now,
		renderSize: r.sizeBytes ?? 0,
		lambdasInvoked: 1,
		cleanup: null,
		timeToFinishChunks: r.renderedDoneAt ? r.renderedDoneAt - r.started : null,
		timeToRenderFrames: r.renderedDoneAt ? r.renderedDoneAt - r.started : null,
		timeToEncode: done && r.renderedDoneAt ? r.finishedAt - r.renderedDoneAt : null,
		retriesInfo: [],
		mostExpensiveFrameRanges: null,
		framesRendered: r.renderedFrames,
		outputSizeInBytes: r.sizeBytes,
		estimatedBillingDurationInMilliseconds: (r.finishedAt ?? now) - r.started,
		combinedFrames: done ? (total ?? 0) : 0,
		timeToCombine: null,
		timeoutTimestamp: r.timeoutTimestamp,
		functionLaunched: r.started,
		serveUrlOpened: r.compositionValidated,
		compositionValidated: r.compositionValidated,
		artifacts: [],
	};
};

// ------------------------------------------------------------ HTTP

const readBody = (req) =>
	new Promise((resolve, reject) => {
		const chunks = [];
		req.on('data', (c) => chunks.push(c));
		req.on('end', () => resolve(Buffer.concat(chunks)));
		req.on('error', reject);
	});

const send = (res, status, headers, body) => {
	const buf = body === undefined ? Buffer.alloc(0) : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
	res.writeHead(status, {
		'content-length': buf.length,
		'x-amzn-requestid': randomBytes(16).toString('hex'),
		...headers,
	});
	res.end(buf);
};

// "Credential=AKID/20250101/us-east-1/lambda/aws4_request" -> us-east-1
const regionOf = (req) => /Credential=[^/]+\/[^/]+\/([^/]+)\/lambda\//.exec(req.headers.authorization ?? '')?.[1] ?? 'us-east-1';

const invoke = async (req, res, functionName) => {
	const region = regionOf(req);
	if (onlyFunction && functionName !== onlyFunction) {
		send(res, 404, {'content-type': 'application/json', 'x-amzn-errortype': 'ResourceNotFoundException'}, {
			Type: 'User',
			Message: `Function not found: arn:aws:lambda:${region}:000000000000:function:${functionName}`,
		});
		return;
	}
	const invocationType = String(req.headers['x-amz-invocation-type'] ?? 'RequestResponse');
	let params;
	try {
		params = JSON.parse((await readBody(req)).toString('utf8'));
	} catch {
		send(res, 400, {'content-type': 'application/json', 'x-amzn-errortype': 'InvalidRequestContentException'}, {
			Type: 'User',
			message: 'Could not parse request body into json',
		});
		return;
	}
	const ok = {'content-type': 'application/json', 'x-amz-executed-version': '$LATEST'};
	try {
		let result;
		if (params.type === 'start') {
			result = start(params, {functionName, region});
		} else if (params.type === 'status') {
			result = status(params);
		} else {
			throw new Error(`lambda-standin supports only the "start" and "status" routines (got ${JSON.stringify(params.type)})`);
		}
		if (invocationType === 'Event') {
			send(res, 202, {}, undefined);
		} else {
			send(res, 200, ok, result);
		}
	} catch (err) {
		if (err.unhandled) {
			// What Lambda answers when the handler throws: 200 + X-Amz-Function-Error.
			send(res, 200, {...ok, 'x-amz-function-error': 'Unhandled'}, {
				errorType: err.name ?? 'Error',
				errorMessage: err.message,
				trace: String(err.stack ?? '').split('\n'),
			});
		} else {
			// Buffered routines (start) catch errors and return them in the payload.
			send(res, 200, ok, {type: 'error', message: err.message, stack: String(err.stack ?? '')});
		}
	}
};

const serveOutput = (req, res, renderId) => {
	const r = renders.get(renderId);
	if (!r || r.sizeBytes === null) {
		send(res, 404, {'content-type': 'text/plain'}, 'no such output');
		return;
	}
	res.writeHead(200, {'content-type': 'video/mp4', 'content-length': r.sizeBytes});
	if (req.method === 'HEAD') {
		res.end();
		return;
	}
	fs.createReadStream(r.outputPath).pipe(res);
};

const server = http.createServer((req, res) => {
	const url = new URL(req.url, 'http://127.0.0.1');
	const m = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/.exec(url.pathname);
	if (req.method === 'POST' && m) {
		invoke(req, res, decodeURIComponent(m[1])).catch((err) => {
			log('invoke failed:', err);
			if (!res.headersSent) {
				send(res, 500, {'content-type': 'application/json', 'x-amzn-errortype': 'ServiceException'}, {message: String(err)});
			}
		});
		return;
	}
	if (req.method === 'GET' && url.pathname === '/standin/renders') {
		// For tests: every render started here (a crash must not start, and pay for, another).
		const started = [...renders.values()].map((r) => ({renderId: r.renderId, done: r.finishedAt !== null, error: r.error ? String(r.error.message ?? r.error) : null}));
		send(res, 200, {'content-type': 'application/json'}, started);
		return;
	}
	const o = /^\/renders\/([0-9a-f]+)\/out\.mp4$/.exec(url.pathname);
	if ((req.method === 'GET' || req.method === 'HEAD') && o) {
		serveOutput(req, res, o[1]);
		return;
	}
	send(res, 404, {'content-type': 'application/json', 'x-amzn-errortype': 'UnknownOperationException'}, {
		message: `lambda-standin: no route for ${req.method} ${url.pathname}`,
	});
});

const shutdown = async (sig) => {
	log(`${sig}: shutting down`);
	setTimeout(() => process.exit(0), 3000).unref();
	server.close();
	await Promise.all([...renders.values()].map((r) => (r.finishedAt === null ? r.cancel?.() : null)).filter(Boolean)).catch(() => {});
	process.exit(0);
};
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
	port = server.address().port;
	process.stdout.write(`${JSON.stringify({port, endpoint: `http://127.0.0.1:${port}`})}\n`);
	log(`listening on 127.0.0.1:${port} (Remotion ${VERSION})`);
});
