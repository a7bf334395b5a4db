#!/usr/bin/env node
// Bundles the Remotion project (src/index.ts) into a static directory that
// render.mjs (serveUrl) or Remotion Lambda (after upload) renders from.
//
//   node build-bundle.mjs [outDir]      (default: ./build)
//
// Works offline. Builds into a sibling temp directory first and swaps it in at
// the end, so a host rendering from the old bundle never sees a half-written one.
// Prints the absolute bundle path as the only line on stdout.
import {bundle} from '@remotion/bundler';
import fs from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const outDir = path.resolve(process.argv[2] ?? path.join(here, 'build'));
const tmpDir = `${outDir}.tmp-${process.pid}`;
const oldDir = `${outDir}.old-${process.pid}`;

const looksLikeBundle = (dir) =>
	fs.existsSync(path.join(dir, 'index.html')) && fs.existsSync(path.join(dir, 'bundle.js'));

if (fs.existsSync(outDir) && fs.readdirSync(outDir).length > 0 && !looksLikeBundle(outDir)) {
	console.error(`Refusing to replace ${outDir}: it exists and does not look like a Remotion bundle.`);
	process.exit(2);
}

const started = Date.now();
let lastPct = -1;
try {
	await bundle({
		entryPoint: path.join(here, 'src', 'index.ts'),
		outDir: tmpDir,
		rootDir: here,
		// Webpack's cache would add ~160 MB under node_modules/.cache to save ~8 s per
		// bundle; the bundle is built once per deploy. REMOTION_BUNDLE_CACHE=1 turns it on.
		enableCaching: process.env.REMOTION_BUNDLE_CACHE === '1',
		onProgress: (p) => {
			const pct = Math.floor(p / 10) * 10;
			if (pct !== lastPct) {
				lastPct = pct;
				console.error(`bundling: ${pct}%`);
			}
		},
	});
} catch (err) {
	fs.rmSync(tmpDir, {recursive: true, force: true});
	console.error(err?.stack ?? String(err));
	process.exit(1);
}

if (fs.existsSync(outDir)) {
	fs.renameSync(outDir, oldDir);
}
fs.renameSync(tmpDir, outDir);
fs.rmSync(oldDir, {recursive: true, force: true});
console.error(`bundled in ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.stdout.write(`${outDir}\n`);
