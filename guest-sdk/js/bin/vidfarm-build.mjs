#!/usr/bin/env node
// vidfarm-build <templateDir> <out.wasm> [--wit <dir>] [--keep-bundle]
//
// Turns a TypeScript/JavaScript template package into a wasm component of the Vidfarm
// `template` world, offline:
//   1. esbuild bundles the template's entry and its npm dependencies into one ES module
//      (the `vidfarm:template/*` imports stay external: the component imports them);
//   2. componentize-js (used as a library) embeds it in StarlingMonkey against the WIT.
// The entry is package.json's `vidfarm.entry`, else `main`, else src/index.ts (or .js).

import { existsSync, realpathSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { componentize } from "@bytecodealliance/componentize-js";

const sdkDir = resolve(dirname(realpathSync(fileURLToPath(import.meta.url))), "..");

function usage(message) {
  if (message) console.error(`vidfarm-build: ${message}`);
  console.error("usage: vidfarm-build <templateDir> <out.wasm> [--wit <dir>] [--keep-bundle]");
  process.exit(2);
}

function parseArgs(argv) {
  const positional = [];
  const options = { wit: process.env.VIDFARM_WIT, keepBundle: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--wit") options.wit = argv[++i];
    else if (argv[i] === "--keep-bundle") options.keepBundle = true;
    else if (argv[i] === "-h" || argv[i] === "--help") usage();
    else positional.push(argv[i]);
  }
  if (positional.length !== 2) usage("expected a template directory and an output path");
  return { templateDir: resolve(positional[0]), out: resolve(positional[1]), ...options };
}

/** The repository's WIT: `--wit`, $VIDFARM_WIT, or wit/ two levels above this SDK. */
function witDir(explicit) {
  const dir = resolve(explicit ?? join(sdkDir, "..", "..", "wit"));
  if (!existsSync(join(dir, "template.wit"))) usage(`no template.wit in ${dir} (pass --wit <dir>)`);
  return dir;
}

async function entryOf(templateDir) {
  const manifestPath = join(templateDir, "package.json");
  if (!existsSync(manifestPath)) usage(`${templateDir} has no package.json`);
  const pkg = JSON.parse(await readFile(manifestPath, "utf8"));
  const candidates = [pkg.vidfarm?.entry, pkg.main, "src/index.ts", "src/index.js", "index.ts", "index.js"];
  const entry = candidates.filter(Boolean).map((c) => resolve(templateDir, c)).find((p) => existsSync(p));
  if (!entry) usage(`no entry in ${templateDir}: set "main" in package.json or add src/index.ts`);
  if (!existsSync(join(templateDir, "node_modules", "@vidfarm", "guest"))) {
    usage(`@vidfarm/guest is not installed in ${templateDir}: run \`npm ci\` (or \`npm install\`) there first`);
  }
  return entry;
}

/** One ES module: the template and its dependencies, re-exporting `describe` and `run`. */
async function bundle(templateDir, entry, outfile) {
  const contents = [
    `import * as template from ${JSON.stringify("./" + relative(templateDir, entry).split("\\").join("/"))};`,
    `import { exportTemplate } from "@vidfarm/guest/component";`,
    `export const { describe, run } = exportTemplate(template);`,
  ].join("\n");
  const result = await build({
    stdin: { contents, resolveDir: templateDir, sourcefile: "vidfarm-component-entry.js", loader: "js" },
    absWorkingDir: templateDir,
    bundle: true,
    format: "esm",
    // StarlingMonkey is a browser-like engine (web APIs, no Node built-ins): prefer packages'
    // browser builds, and let a Node-only import fail here rather than at run time.
    platform: "browser",
    target: "es2022",
    external: ["vidfarm:template/*"],
    outfile,
    keepNames: true,
    legalComments: "none",
    logLevel: "warning",
    metafile: true,
  });
  return Object.keys(result.metafile.inputs).length;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const wit = witDir(args.wit);
  const entry = await entryOf(args.templateDir);
  const work = await mkdtemp(join(tmpdir(), "vidfarm-build-"));
  try {
    const started = Date.now();
    const bundlePath = join(work, "template.bundle.js");
    const modules = await bundle(args.templateDir, entry, bundlePath);
    const bundled = Date.now();
    const { component } = await componentize({
      sourcePath: bundlePath,
      witPath: wit,
      worldName: "template",
      // No outbound HTTP and no fetch handler: templates reach the world only through the
      // WIT imports. stdio (errors, console), random and clocks stay: the host provides them.
      disableFeatures: ["http", "fetch-event"],
    });
    await mkdir(dirname(args.out), { recursive: true });
    await writeFile(args.out, component);
    if (args.keepBundle) await writeFile(args.out.replace(/\.wasm$/, "") + ".bundle.js", await readFile(bundlePath));
    const mib = (component.length / (1 << 20)).toFixed(1);
    console.log(
      `vidfarm-build: ${relative(process.cwd(), args.out) || args.out} (${mib} MiB; ${modules} modules bundled ` +
        `in ${bundled - started} ms, componentized in ${Date.now() - bundled} ms)`,
    );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(`vidfarm-build: ${error?.message ?? error}`);
  process.exit(1);
});
