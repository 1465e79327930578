// @tus/server (npm) with its file store: the reference Node TUS server, for
// interop tests and side-by-side benchmarks.
// Usage: node tus_node_server.mjs PORT DIR
// Prints "listening on http://127.0.0.1:PORT" when ready.
import http from 'node:http';
import { Server } from '@tus/server';
import { FileStore } from '@tus/file-store';

const [port, dir] = process.argv.slice(2);
const tus = new Server({ path: '/files', datastore: new FileStore({ directory: dir }) });
const server = http.createServer((req, res) => tus.handle(req, res));
server.listen(Number(port), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
