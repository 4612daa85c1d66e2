// Times, durations and schedules in words.
import {h} from './dom.js';

const dateFmt = new Intl.DateTimeFormat(undefined, {
  dateStyle: 'medium', timeStyle: 'medium',
});

// A <time> showing an RFC 3339 timestamp in the browser's time zone, with
// UTC in its title (shown on hover). Empty or absent: a dash.
export function time(ts) {
  if (!ts) return h('span', {class: 'muted'}, '—');
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return h('span', {}, ts);
  return h('time', {datetime: d.toISOString(), title: utc(d)}, dateFmt.format(d));
}

export function utc(d) {
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC').replace(/Z$/, ' UTC');
}

// 90 -> "1 min 30 s", 86400 -> "1 day".
export function duration(seconds) {
  let s = Number(seconds);
  if (!Number.isFinite(s) || s <= 0) return `${seconds} s`;
  const parts = [];
  for (const [n, unit] of [[86400, 'day'], [3600, 'h'], [60, 'min'], [1, 's']]) {
    const k = Math.floor(s / n);
    if (k > 0) {
      parts.push(unit === 'day' ? `${k} day${k > 1 ? 's' : ''}` : `${k} ${unit}`);
      s -= k * n;
    }
  }
  return parts.join(' ');
}

// The schedule in words, e.g. "every 1 h", "cron '0 2 * * *' in Europe/Berlin".
export function scheduleWords(s) {
  if (!s) return '';
  const zone = s.time_zone && s.time_zone !== 'UTC' ? ` in ${s.time_zone}` : ' (UTC)';
  let words;
  if (s.cron) {
    words = `cron '${s.cron}'${zone}`;
  } else if (s.calendar && (s.calendar.include || []).length) {
    const n = s.calendar.include.length;
    words = `calendar, ${n} rule${n > 1 ? 's' : ''}${zone}`;
  } else if (s.once) {
    words = s.start ? `once, at ${dateFmt.format(new Date(s.start))}` : 'once';
  } else if (Number(s.interval_seconds) > 0) {
    words = `every ${duration(s.interval_seconds)}`;
  } else {
    words = 'no schedule';
  }
  const stops = [];
  if (s.stop_after_runs !== undefined && s.stop_after_runs !== null &&
      Number(s.stop_after_runs) > 0) {
    stops.push(`${s.stop_after_runs} run${Number(s.stop_after_runs) > 1 ? 's' : ''}`);
  }
  if (s.stop_after_date) stops.push(`until ${dateFmt.format(new Date(s.stop_after_date))}`);
  return stops.length ? `${words}; stops after ${stops.join(' or ')}` : words;
}

// "LOADED" -> a badge element; the text is the status itself.
export function badge(status) {
  const s = String(status || 'UNKNOWN');
  return h('span', {class: `badge st-${s.toLowerCase()}`}, s);
}

// Number fields arrive as strings (64-bit integers in the JSON mapping).
export function num(v) {
  return v === undefined || v === null || v === '' ? 0 : Number(v);
}

// A compact summary of a run's provider details (a transfer's counters).
export function detailsSummary(details) {
  if (!details) return '';
  let d;
  try {
    d = JSON.parse(details);
  } catch {
    return '';
  }
  if (!d || typeof d !== 'object') return '';
  const parts = [];
  const pick = [
    ['files_transferred', 'files done'], ['bytes_transferred', 'bytes done'],
    ['files_skipped', 'skipped'], ['files_failed', 'failed'],
    ['subtasks_succeeded', 'succeeded'], ['subtasks_failed', 'failed'],
  ];
  for (const [k, label] of pick) {
    if (d[k] !== undefined) parts.push(`${d[k]} ${label}`);
  }
  return parts.join(', ');
}
