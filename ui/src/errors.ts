// What each error code means to the person in front of the window: one
// headline per class of failure (wrong credentials, server unreachable,
// disk full, …) shown before the error's own message. The table is keyed by
// the bindings' ErrorCode union, so a code added to spool_proto without a
// headline here is a type error. `null`: the message alone says it best.

import type { ErrorCode } from "./bindings";

const CREDENTIALS = "The server refused Spool's credentials: check the server, token id and secret in Settings.";
const UNREACHABLE = "The server cannot be reached. What you record is kept; the upload resumes when it is back.";
const SERVER_FAULT = "The server had a problem. Spool keeps what it recorded and retries.";
const REFUSED = "The server refused the upload.";
const GONE = "The server no longer has this upload.";

const HEADLINES: Record<ErrorCode, string | null> = {
  ERR_UNAUTHORIZED: CREDENTIALS,
  ERR_INVALID_SIGNATURE: CREDENTIALS,
  ERR_SIGNATURE_EXPIRED: CREDENTIALS,
  ERR_FORBIDDEN: CREDENTIALS,
  ERR_SERVER_UNREACHABLE: UNREACHABLE,
  ERR_DISK_FULL: "This computer's disk is full. What was recorded is kept.",
  ERR_INSUFFICIENT_STORAGE: "The server is out of space. Spool keeps the recording and retries.",
  ERR_NO_DESTINATION: "There is nowhere to upload to.",
  ERR_AUDIO_UNAVAILABLE: "Sound cannot be recorded.",
  ERR_SOURCE: "There is nothing Spool can record.",
  ERR_ENCODE: "The video could not be encoded.",
  ERR_LOCAL_FILE: "A file on this computer could not be read or written.",
  ERR_RECORDING_IN_PROGRESS: "Another Spool is still recording this.",
  ERR_RECORDING_NOT_FOUND: "This recording is not in Spool's list any more.",
  ERR_UPLOAD: "The upload failed.",
  ERR_UPLOAD_NOT_FOUND: GONE,
  ERR_UPLOAD_EXPIRED: GONE,
  ERR_UPLOAD_TERMINATED: GONE,
  ERR_UPLOAD_DAMAGED: GONE,
  ERR_ASSET_NOT_FOUND: GONE,
  ERR_INTERNAL: "Something went wrong inside Spool or its server; the log has the details.",
  ERR_SHUTTING_DOWN: SERVER_FAULT,
  ERR_SERVER_BUSY: SERVER_FAULT,
  ERR_PROCESSING_FAILED: SERVER_FAULT,
  ERR_UPLOAD_LOCKED: SERVER_FAULT,
  ERR_UPLOAD_INTERRUPTED: SERVER_FAULT,
  ERR_REQUEST_TIMEOUT: SERVER_FAULT,
  ERR_INVALID_JSON: REFUSED,
  ERR_INVALID_REQUEST: REFUSED,
  ERR_UNSUPPORTED_VERSION: REFUSED,
  ERR_INVALID_CONTENT_TYPE: REFUSED,
  ERR_INVALID_OFFSET: REFUSED,
  ERR_MISMATCHED_OFFSET: REFUSED,
  ERR_INVALID_LENGTH: REFUSED,
  ERR_LENGTH_ALREADY_SET: REFUSED,
  ERR_LENGTH_BELOW_OFFSET: REFUSED,
  ERR_MAX_SIZE_EXCEEDED: "The recording is larger than the server accepts.",
  ERR_UPLOAD_SIZE_EXCEEDED: REFUSED,
  ERR_INVALID_METADATA: REFUSED,
  ERR_INVALID_CHECKSUM: REFUSED,
  ERR_CHECKSUM_MISMATCH: REFUSED,
  ERR_INVALID_CONCAT: REFUSED,
  ERR_MODIFY_FINAL: REFUSED,
  ERR_UPLOAD_INCOMPLETE: REFUSED,
  ERR_UPLOAD_COMPLETE: REFUSED,
  ERR_BODY_TOO_LARGE: REFUSED,
  ERR_ASSET_NOT_READY: REFUSED,
  ERR_RANGE_NOT_SATISFIABLE: REFUSED,
  ERR_METHOD_NOT_ALLOWED: REFUSED,
  ERR_NOT_FOUND: "The server does not answer Spool's requests at that address: check the server URL in Settings.",
  ERR_UNSUPPORTED_MEDIA: "The server cannot play this recording; its original stays downloadable.",
  ERR_INVALID_SETTINGS: null,
  ERR_ALREADY_RECORDING: null,
  ERR_NOT_RECORDING: null,
  ERR_DESKTOP: null,
  ERR_INTERRUPTED: null,
  ERR_UPDATE_SIGNATURE: null,
  ERR_UPDATE_UNAVAILABLE: null,
  ERR_UPDATE_INSTALL: null,
  ERR_INVALID_POLICY: null,
  ERR_STORAGE_UNAVAILABLE: null,
};

/** The error as shown: its class's headline, then its own message. */
export function describe(code: ErrorCode, message: string): string {
  const headline = HEADLINES[code];
  return headline ? `${headline} (${message})` : message;
}
