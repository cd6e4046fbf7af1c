// Khronos' glTF validator over GLB/glTF files: one JSON line per file (the counts and every issue message).
// Usage: node web/validate-gltf.mjs FILE...   (the tests run it on every GLB; `npm ci --prefix web` installs it)
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import validator from "gltf-validator";

for (const path of process.argv.slice(2)) {
  const report = await validator.validateBytes(new Uint8Array(await readFile(path)), { uri: basename(path) });
  const { numErrors, numWarnings, numInfos, numHints, messages } = report.issues;
  console.log(JSON.stringify({ path, numErrors, numWarnings, numInfos, numHints,
    messages: messages.map(({ code, severity, message, pointer }) => ({ code, severity, message, pointer })) }));
}
