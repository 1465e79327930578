// Uploads a file with tus-js-client (npm) in its IETF draft mode,
// `protocol: 'ietf-draft-05'` (Upload-Draft-Interop-Version 6), and reports
// what went over the wire, for Spool's draft end-to-end tests.
// Usage: node tus_js_ietf.mjs SOURCE ENDPOINT FILE CHUNK_SIZE AUTH_HEADER [--with-data] [--storage FILE]
//   SOURCE        path   - an fs.ReadStream of FILE, uploadSize known
//                 buffer - FILE read into a Buffer
//   CHUNK_SIZE    bytes per request; 0 sends the whole file in one
//   --with-data   uploadDataDuringCreation: the first chunk rides on the POST
//   --storage F   a FileUrlStorage in F: an upload of the same source found
//                 there (findPreviousUploads) is resumed
//                 (resumeFromPreviousUpload) instead of created anew
// Prints one JSON line per event, as it happens:
//   {"event":"request","method","url","offset","complete","length","interop","tus","content_type"}
//   {"event":"information","method","status","location","interop"}  (a 1xx, e.g. the 104)
//   {"event":"response","method","status","offset","complete","location","interop","asset_id"}
//   {"event":"progress","sent"}          bytes sent so far (onProgress), acknowledged or not
//   {"event":"chunk","offset"}           an acknowledged chunk (onChunkComplete)
//   {"event":"resuming","url","previous"} a previous upload was found in the storage
//   {"event":"success","url","resumed_from"}
// resumed_from is, for a resumed upload, the Upload-Offset of its first PATCH
// (or the HEAD's offset when nothing was left to send); null otherwise.
// Exits 1 with the error on failure.
import fs from 'node:fs';
import * as tus from 'tus-js-client';

const [source, endpoint, file, chunkArg, auth, ...flags] = process.argv.slice(2);
const withData = flags.includes('--with-data');
const storageAt = flags.indexOf('--storage');
const storage = storageAt >= 0 ? flags[storageAt + 1] : null;
const chunkSize = Number(chunkArg) > 0 ? Number(chunkArg) : Number.POSITIVE_INFINITY;
const size = fs.statSync(file).size;

const emit = (event) => console.log(JSON.stringify(event));

// The default Node stack, with every 1xx the server sends reported:
// tus-js-client itself never looks at them.
class ObservingStack extends tus.DefaultHttpStack {
  createRequest(method, url) {
    const req = super.createRequest(method, url);
    const send = req.send.bind(req);
    req.send = (body) => {
      const sent = send(body);
      req.getUnderlyingObject()?.on('information', (info) =>
        emit({
          event: 'information',
          method,
          status: info.statusCode,
          location: info.headers.location ?? null,
          interop: info.headers['upload-draft-interop-version'] ?? null,
        }),
      );
      return sent;
    };
    return req;
  }
}

let input;
const options = {
  endpoint,
  protocol: 'ietf-draft-05',
  headers: { Authorization: auth },
  chunkSize,
  uploadDataDuringCreation: withData,
  retryDelays: [0, 500, 1000],
  metadata: { filename: file.split('/').pop(), filetype: 'application/octet-stream' },
  httpStack: new ObservingStack(),
};
if (source === 'path') {
  input = fs.createReadStream(file);
  options.uploadSize = size;
} else if (source === 'buffer') {
  input = fs.readFileSync(file);
} else {
  console.error(`unknown source ${source}`);
  process.exit(2);
}
if (storage) {
  options.urlStorage = new tus.FileUrlStorage(storage);
}

let resuming = false;
let resumedFrom = null;
let headOffset = null;
const header = (req, name) => req.getHeader(name) ?? null;
const upload = new tus.Upload(input, {
  ...options,
  onBeforeRequest(req) {
    const method = req.getMethod();
    const offset = header(req, 'Upload-Offset');
    if (resuming && resumedFrom === null && method === 'PATCH') {
      resumedFrom = Number(offset);
    }
    emit({
      event: 'request',
      method,
      url: req.getURL(),
      offset: offset === null ? null : Number(offset),
      complete: header(req, 'Upload-Complete'),
      length: header(req, 'Upload-Length'),
      interop: header(req, 'Upload-Draft-Interop-Version'),
      tus: header(req, 'Tus-Resumable') !== null,
      content_type: header(req, 'Content-Type'),
    });
  },
  onAfterResponse(req, res) {
    const offset = res.getHeader('Upload-Offset');
    if (req.getMethod() === 'HEAD' && offset !== undefined) {
      headOffset = Number(offset);
    }
    emit({
      event: 'response',
      method: req.getMethod(),
      status: res.getStatus(),
      offset: offset === undefined ? null : Number(offset),
      complete: res.getHeader('Upload-Complete') ?? null,
      location: res.getHeader('Location') ?? null,
      interop: res.getHeader('Upload-Draft-Interop-Version') ?? null,
      asset_id: res.getHeader('Spool-Asset-Id') ?? null,
    });
  },
  onProgress(sent) {
    emit({ event: 'progress', sent });
  },
  onChunkComplete(_chunk, accepted) {
    emit({ event: 'chunk', offset: accepted });
  },
  onError(err) {
    console.error(`upload failed: ${err}`);
    process.exit(1);
  },
  onSuccess() {
    // An upload found complete by the HEAD sends no PATCH.
    if (resuming && resumedFrom === null) {
      resumedFrom = headOffset;
    }
    emit({ event: 'success', url: upload.url, resumed_from: resumedFrom });
    process.exit(0);
  },
});

if (storage) {
  const previous = await upload.findPreviousUploads();
  if (previous.length > 0) {
    // The newest one, should a source have been uploaded more than once.
    previous.sort((a, b) => new Date(b.creationTime) - new Date(a.creationTime));
    resuming = true;
    emit({ event: 'resuming', url: previous[0].uploadUrl, previous: previous.length });
    upload.resumeFromPreviousUpload(previous[0]);
  }
}
upload.start();
