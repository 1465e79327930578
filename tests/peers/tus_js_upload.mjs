// Uploads a file to a TUS server with tus-js-client (npm), the reference
// browser/Node client, in one of three ways:
//   stream   - the file read as a Node stream (known length)
//   deferred - Upload-Defer-Length, several chunks from a Buffer
//   parallel - parallelUploads through the concatenation extension
// Usage: node tus_js_upload.mjs MODE ENDPOINT FILE CHUNK_SIZE [AUTH_HEADER]
// Prints one JSON line {"url": ...} on success; exits 1 with the error otherwise.
import fs from 'node:fs';
import * as tus from 'tus-js-client';

const [mode, endpoint, file, chunkArg, auth] = process.argv.slice(2);
const chunkSize = Number(chunkArg);
const headers = auth ? { Authorization: auth } : {};
const size = fs.statSync(file).size;

let source;
const options = {
  endpoint,
  headers,
  chunkSize,
  retryDelays: [0, 500, 1000],
  metadata: { filename: file.split('/').pop(), filetype: 'application/octet-stream' },
};
if (mode === 'stream') {
  source = fs.createReadStream(file);
  options.uploadSize = size;
} else if (mode === 'deferred') {
  source = fs.readFileSync(file);
  options.uploadLengthDeferred = true;
} else if (mode === 'parallel') {
  source = fs.readFileSync(file);
  options.parallelUploads = 4;
  delete options.chunkSize;
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}

await new Promise((resolve) => {
  const upload = new tus.Upload(source, {
    ...options,
    onError(err) {
      console.error(`upload failed: ${err}`);
      process.exit(1);
    },
    onSuccess() {
      console.log(JSON.stringify({ url: upload.url }));
      resolve();
    },
  });
  upload.start();
});
