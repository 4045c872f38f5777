// Bundles the extension (extension/src/extension.ts + vscode-languageclient) into dist/extension.js.
// `--production` minifies; `--watch` rebuilds on change. The repository path is baked in as the last-resort
// server root for a .vsix installed from this checkout (see extension/README.md, "Where the server is").
import * as esbuild from "esbuild";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.dirname(fileURLToPath(import.meta.url));
const production = process.argv.includes("--production");
const watch = process.argv.includes("--watch");

const options = {
  entryPoints: [path.join(root, "extension/src/extension.ts")],
  bundle: true,
  format: "cjs",
  platform: "node",
  target: "node20",
  outfile: path.join(root, "dist/extension.js"),
  external: ["vscode"],
  sourcemap: !production,
  minify: production,
  legalComments: "none",
  logLevel: "warning",
  define: {
    __GHOSTLINE_BUILD_ROOT__: JSON.stringify(process.env.GHOSTLINE_BUILD_ROOT ?? root),
  },
};

if (watch) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
  console.log("esbuild: watching extension/src");
} else {
  await esbuild.build(options);
}
