#!/usr/bin/env node
// Bundles a template's own Remotion project (its `remotion/` folder) for
// `vidfarm template build`:
//
//   node bundle-template.mjs <entry point> <out dir>
//
// The template needs no node_modules of its own: `remotion`, `react` and
// `react-dom` resolve from this renderer's (one copy of React, the version the
// renderer renders with). Works offline.
import {bundle} from '@remotion/bundler';
import fs from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const [entryArg, outArg] = process.argv.slice(2);
if (!entryArg || !outArg) {
	console.error('usage: node bundle-template.mjs <entry point> <out dir>');
	process.exit(2);
}
const entryPoint = path.resolve(entryArg);
const outDir = path.resolve(outArg);
if (!fs.existsSync(entryPoint)) {
	console.error(`bundle-template: no entry point at ${entryPoint}`);
	process.exit(2);
}
const ours = path.join(here, 'node_modules');

const started = Date.now();
try {
	await bundle({
		entryPoint,
		outDir,
		rootDir: path.dirname(entryPoint),
		enableCaching: false,
		webpackOverride: (config) => ({
			...config,
			resolve: {
				...config.resolve,
				modules: [...(config.resolve?.modules ?? ['node_modules']), ours],
				// Always this renderer's React and Remotion, even if the template has its own.
				alias: {
					...(config.resolve?.alias ?? {}),
					react: path.join(ours, 'react'),
					'react-dom': path.join(ours, 'react-dom'),
					remotion: path.join(ours, 'remotion'),
				},
			},
		}),
	});
} catch (err) {
	console.error(err?.stack ?? String(err));
	process.exit(1);
}
console.error(`bundled ${path.relative(process.cwd(), entryPoint)} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
// stdout stays quiet: `vidfarm template build` prints only the component's path there.
