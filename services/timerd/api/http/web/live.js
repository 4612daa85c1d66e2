// A watch stream (Server-Sent Events, docs/API.md "Watching") read with
// fetch(): EventSource cannot send an Authorization header. The stream is
// parsed here (id:, event:, data:, comments), and after a drop it resumes
// with Last-Event-ID from the last event received, so no event is lost or
// repeated (the server sends a RESET and a snapshot if that point is gone).
import {authHeaders} from './api.js';

const kMaxLineBytes = 4 << 20;  // A line longer than this ends the stream.

export class LiveStream {
  // onEvent({id, type, data}); onState('connecting'|'live'|'retrying'|'ended', detail)
  constructor(path, onEvent, onState) {
    this.path = path;
    this.onEvent = onEvent;
    this.onState = onState || (() => {});
    this.lastId = '';
    this.stopped = false;
    this.controller = null;
    this.retryMs = 500;
  }

  start() {
    this.loop();
    return this;
  }

  stop() {
    this.stopped = true;
    if (this.controller) this.controller.abort();
  }

  // Drops the connection as a network failure would (for tests of resume).
  drop() {
    if (this.controller) this.controller.abort();
  }

  async loop() {
    while (!this.stopped) {
      let ended = false;
      try {
        ended = await this.once();
      } catch (e) {
        if (this.stopped) return;
      }
      if (this.stopped) return;
      if (ended) {
        this.onState('ended', '');
        return;
      }
      this.onState('retrying', '');
      await new Promise((r) => setTimeout(r, this.retryMs));
      this.retryMs = Math.min(this.retryMs * 2, 10000);
    }
  }

  // One connection; true when the stream ended for good (the job was
  // deleted, or a refusal that retrying will not change).
  async once() {
    this.controller = new AbortController();
    const headers = {...authHeaders(), 'Accept': 'text/event-stream'};
    if (this.lastId) headers['Last-Event-ID'] = this.lastId;
    this.onState('connecting', '');
    const res = await fetch(this.path, {
      headers, signal: this.controller.signal, cache: 'no-store', credentials: 'omit',
    });
    if (!res.ok) {
      let message = `HTTP ${res.status}`;
      try {
        message = (await res.json()).message || message;
      } catch {
        // Not JSON: keep the HTTP code.
      }
      this.onState('error', message);
      // 429 (too many streams) and 5xx pass; the rest will not.
      return !(res.status === 429 || res.status >= 500);
    }
    this.onState('live', '');
    this.retryMs = 500;
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    let ev = {id: null, type: '', data: []};
    let deleted = false;
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buf += value;
      let nl;
      while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(buf[nl] === '\r' && buf[nl + 1] === '\n' ? nl + 2 : nl + 1);
        if (line === '') {
          if (ev.data.length) {
            if (ev.id !== null) this.lastId = ev.id;
            let data = null;
            try {
              data = JSON.parse(ev.data.join('\n'));
            } catch {
              data = null;
            }
            const type = ev.type || 'message';
            if (type === 'DELETED' && this.path.match(/\/v1\/jobs\/[^/:]+:watch/)) deleted = true;
            this.onEvent({id: ev.id, type, data});
          }
          ev = {id: null, type: '', data: []};
          continue;
        }
        if (line.startsWith(':')) continue;  // A comment: the keep-alive.
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'id') ev.id = value;
        else if (field === 'event') ev.type = value;
        else if (field === 'data') ev.data.push(value);
      }
      if (buf.length > kMaxLineBytes) throw new Error('event too long');
    }
    return deleted;
  }
}
