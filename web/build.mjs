// Bundles three.js + GLTFLoader + OrbitControls into one minified ES module under api/static/vendor/,
// so the page works offline and needs no CDN. Run: cd web && npm ci && npm run build (commit the output).
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const vendor = join(here, "..", "api", "static", "vendor");
const three = JSON.parse(readFileSync(join(here, "node_modules", "three", "package.json"), "utf8"));

mkdirSync(vendor, { recursive: true });
await build({
  entryPoints: [join(here, "src", "three-entry.js")],
  outfile: join(vendor, "three.js"),
  bundle: true,
  format: "esm",
  minify: true,
  target: "es2020",
  legalComments: "eof",
  banner: { js: `/* three.js ${three.version} (MIT) with GLTFLoader and OrbitControls; built by web/build.mjs */` },
  logLevel: "info",
});
copyFileSync(join(here, "node_modules", "three", "LICENSE"), join(vendor, "three.LICENSE.txt"));
