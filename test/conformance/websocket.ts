// WebSocket checks (request.protocol "websocket"): open the connection through the gateway or a sidecar, send frames, compare the echoes.
import type { IncomingMessage } from 'node:http';
import { WebSocket, type RawData } from 'ws';
import { goStyleServerIdentity, REQUEST_TIMEOUT_MS, type Destination } from './client.ts';
import type { PreparedRequest } from './evaluate.ts';

/** One frame as a case writes it: text, or bytes. */
interface FrameSpec {
  text?: string;
  binary?: number[];
}

/** `expect.websocket` of a case: frames sent in order, each with the frame that must come back. */
interface ExpectedWebSocket {
  frames?: { send: FrameSpec; receive: FrameSpec }[];
}

function describeFrame(frame: FrameSpec): string {
  return frame.text !== undefined ? `text "${frame.text}"` : `binary [${(frame.binary ?? []).join(', ')}]`;
}

function describeReceived(data: Buffer, binary: boolean): string {
  return binary ? `binary [${[...data].join(', ')}]` : `text "${data.toString('utf8')}"`;
}

/**
 * Opens the WebSocket (the Host and other headers of the prepared request,
 * the path as the request-URI), plays the frames, and says why the answer
 * differs from what the case expects; undefined when it does not.
 */
export async function websocketCheck(destination: Destination, request: PreparedRequest, expected: unknown, timeoutMs = REQUEST_TIMEOUT_MS): Promise<string | undefined> {
  const frames = (expected as ExpectedWebSocket | undefined)?.frames ?? [];
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) headers[name.toLowerCase() === 'host' ? 'host' : name] = value;
  let url: string;
  let tls: Record<string, unknown> = {};
  if (destination.kind === 'proxy') {
    // A sidecar's outbound listener routes by Host, as for a Host-addressed request.
    url = `ws://${destination.host ?? '127.0.0.1'}:${destination.port}${request.path}`;
  } else {
    url = `${destination.scheme === 'https' ? 'wss' : 'ws'}://${destination.address}:${destination.port}${request.path}`;
    if (destination.scheme === 'https') {
      tls = { servername: destination.sni ?? '', ...(destination.ca ? { ca: destination.ca, checkServerIdentity: goStyleServerIdentity } : { rejectUnauthorized: false }) };
    }
  }
  const ws = new WebSocket(url, { headers, handshakeTimeout: timeoutMs, ...tls });
  const received: { data: Buffer; binary: boolean }[] = [];
  let waiting: (() => void) | undefined;
  let ended: string | undefined;
  ws.on('message', (data: RawData, binary: boolean) => {
    received.push({ data: Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]), binary });
    waiting?.();
  });
  try {
    const opened = await new Promise<string | undefined>((resolve) => {
      ws.once('open', () => resolve(undefined));
      ws.once('unexpected-response', (_req, res: IncomingMessage) => {
        res.resume();
        const reason = res.headers['weft-reason'];
        resolve(`expected the WebSocket upgrade (101), got status ${res.statusCode}${reason ? ` (weft-reason ${String(reason)})` : ''}`);
      });
      ws.once('error', (error) => resolve(`the WebSocket could not be opened: ${error.message}`));
    });
    if (opened) return opened;
    ws.on('close', () => {
      ended = 'the WebSocket closed';
      waiting?.();
    });
    for (const [i, frame] of frames.entries()) {
      if (frame.send.text !== undefined) ws.send(frame.send.text);
      else ws.send(Buffer.from(frame.send.binary ?? []), { binary: true });
      const got = await new Promise<{ data: Buffer; binary: boolean } | string>((resolve) => {
        const timer = setTimeout(() => resolve(`no answer to frame ${i + 1} within ${timeoutMs} ms`), timeoutMs);
        const check = () => {
          const next = received.shift();
          if (next) resolve(next);
          else if (ended) resolve(`${ended} before answering frame ${i + 1}`);
          else return;
          clearTimeout(timer);
          waiting = undefined;
        };
        waiting = check;
        check();
      });
      if (typeof got === 'string') return got;
      const wanted = frame.receive;
      const wantedBinary = wanted.text === undefined;
      const wantedData = wantedBinary ? Buffer.from(wanted.binary ?? []) : Buffer.from(wanted.text ?? '', 'utf8');
      if (got.binary !== wantedBinary || !got.data.equals(wantedData)) {
        return `frame ${i + 1}: expected ${describeFrame(wanted)}, got ${describeReceived(got.data, got.binary)}`;
      }
    }
    return undefined;
  } finally {
    ws.removeAllListeners('close');
    ws.on('error', () => {});
    if (ws.readyState === WebSocket.OPEN) ws.close(1000);
    else ws.terminate();
  }
}
