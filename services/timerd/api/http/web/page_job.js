// One job: schedule and its next fires (PreviewSchedule), action and body,
// counters, results with each run's provider details and errors, a live
// feed over the job's watch stream, and the actions on it.
import {ApiError, api, enc, query, requestId} from './api.js';
import {confirmDialog, h, replace, toast} from './dom.js';
import {badge, detailsSummary, num, scheduleWords, time} from './format.js';
import {LiveStream} from './live.js';

const kFeedMax = 200;  // Feed entries kept on the page; older ones drop off.

export async function renderJob(main, {jobId}) {
  const base = `/v1/jobs/${enc(jobId)}`;
  let job;
  try {
    job = await api('GET', base);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      replace(main, h('h1', {}, 'Job not found'),
        h('p', {class: 'error', role: 'alert'}, 'Not found: ', e.message),
        h('p', {}, h('a', {href: '#/jobs'}, 'Back to your jobs')));
      return;
    }
    throw e;
  }

  const heading = h('h1', {});
  const actions = h('div', {class: 'actions', role: 'group', 'aria-label': 'Job actions'});
  const facts = h('dl', {class: 'facts'});
  const fires = h('div', {id: 'fires'});
  const action = h('div', {});
  const results = h('div', {id: 'results'});
  const liveState = h('span', {class: 'live-state', id: 'live-state'}, 'connecting');
  const feed = h('ol', {class: 'feed', id: 'feed', 'aria-live': 'polite', 'aria-relevant': 'additions'});
  replace(main,
    h('p', {class: 'crumbs'}, h('a', {href: '#/jobs'}, 'Jobs'), ' / ', jobId),
    heading, actions,
    h('section', {'aria-labelledby': 's-about'}, h('h2', {id: 's-about'}, 'About'), facts),
    h('section', {'aria-labelledby': 's-fires'}, h('h2', {id: 's-fires'}, 'Next runs'), fires),
    h('section', {'aria-labelledby': 's-action'}, h('h2', {id: 's-action'}, 'Action'), action),
    h('section', {'aria-labelledby': 's-live'},
      h('h2', {id: 's-live'}, 'Live feed ', liveState), feed),
    h('section', {'aria-labelledby': 's-results'}, h('h2', {id: 's-results'}, 'Results'), results));

  let removed = false;
  let actionsFor = '';  // The status the action buttons were built for.
  showJob(job);
  showActionInto(action, job);
  await Promise.all([loadFires(), loadResults()]);

  // The live feed: every event of this job as it happens.
  const stream = new LiveStream(`${base}:watch`, onEvent, (state, detail) => {
    liveState.textContent = detail ? `${state}: ${detail}` : state;
    liveState.dataset.state = state;
  }).start();
  window.__timerLive = stream;  // For the browser tests: drop() to test resume.
  const stop = () => {
    stream.stop();
    window.removeEventListener('hashchange', stop);
  };
  window.addEventListener('hashchange', stop);

  let refreshTimer = 0;
  function onEvent({type, data}) {
    if (!data) return;
    if (type === 'error') {
      addFeed(type, data.message || '');
      return;
    }
    if (data.job && type !== 'SNAPSHOT') {
      job = {...job, ...data.job, action: job.action, results: job.results};
      showJob(job);
    }
    if (type === 'SNAPSHOT' || type === 'RESET') return;
    const r = data.result;
    let text = type.replace('_', ' ').toLowerCase();
    if (r) text += `: run #${r.run_number} ${r.status}${r.error ? ` — ${r.error}` : ''}`;
    addFeed(type, text, data.event_time);
    if (type === 'DELETED') {
      removed = true;
      showJob(job);
    }
    if (type.startsWith('RUN_') || type === 'UPDATED' || type === 'ENDED') {
      // Counters, results and next fires, at most once a second.
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(() => {
        loadResults();
        loadFires();
      }, 300);
    }
  }

  function addFeed(type, text, when) {
    feed.prepend(h('li', {class: `ev ev-${type.toLowerCase()}`, dataset: {type}},
      time(when || new Date().toISOString()), ' ', h('span', {}, text)));
    while (feed.children.length > kFeedMax) feed.lastElementChild.remove();
  }

  function showJob(j) {
    replace(heading, j.name || j.job_id, ' ', badge(removed ? 'DELETED' : j.status));
    heading.setAttribute('tabindex', '-1');
    const s = j.schedule || {};
    const rows = [
      ['Status', [badge(removed ? 'DELETED' : j.status),
        j.end_reason && j.end_reason !== 'END_REASON_UNSPECIFIED' ? ` (${j.end_reason})` : '']],
      ['Schedule', scheduleWords(s)],
      ['Next run', time(j.next_run)],
      ['Last run', time(j.last_run)],
      ['Runs', String(num(j.n_runs))],
      ['Errors', String(num(j.n_errors))],
      ['Skipped', String(num(j.n_skipped))],
      ['Overlap', `${j.overlap_policy || ''}${j.overlap_policy === 'ALLOW' ? ` (up to ${j.max_concurrent})` : ''}`],
      ['Missed runs', j.missed_run_policy || ''],
      ['Label', j.label || '—'],
      ['Owner', j.owner],
      ['Created', time(j.create_time)],
      ['Updated', time(j.update_time)],
      ['Job ID', h('code', {}, j.job_id)],
    ];
    replace(facts, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {dataset: {fact: k}}, v)]));
    showActions(j);
  }

  function showActions(j) {
    // Rebuilt only when the status changes, so a button is not replaced
    // under the pointer (or the keyboard focus) by a routine refresh.
    const key = removed ? 'removed' : j.status;
    if (key === actionsFor) return;
    const hadFocus = actions.contains(document.activeElement);
    actionsFor = key;
    if (removed) return replace(actions);
    const paused = j.status === 'PAUSED';
    const ended = j.status === 'ENDED';
    replace(actions,
      paused
        ? h('button', {type: 'button', id: 'act-resume', on: {click: () => act(':resume', 'Resumed')}}, 'Resume')
        : h('button', {type: 'button', id: 'act-pause', disabled: ended, on: {click: () => act(':pause', 'Paused')}}, 'Pause'),
      h('button', {type: 'button', id: 'act-run', on: {click: () => act(':run', 'Run started', {request_id: requestId()})}}, 'Run now'),
      h('a', {href: `#/jobs/${enc(j.job_id)}/edit`, class: 'button', id: 'act-edit'}, 'Edit'),
      h('button', {type: 'button', class: 'danger', id: 'act-delete', on: {click: onDelete}}, 'Delete'));
    if (hadFocus) actions.firstElementChild.focus();
  }

  async function act(verb, done, body = {}) {
    try {
      job = {...job, ...(await api('POST', `${base}${verb}`, body)), action: job.action};
      showJob(job);
      toast(done);
      loadFires();
    } catch (e) {
      toast(e.message);
    }
  }

  async function onDelete() {
    const ok = await confirmDialog('Delete this job?',
      `“${job.name || job.job_id}” will stop running and be removed.`, 'Delete');
    if (!ok) return;
    try {
      await api('DELETE', `${base}${query({etag: job.etag})}`);
      stream.stop();
      toast('Deleted');
      location.hash = '#/jobs';
    } catch (e) {
      toast(e.message);
    }
  }

  async function loadFires() {
    if (removed) return;
    try {
      const p = await api('GET', `${base}:preview${query({count: 5})}`);
      const entries = p.entries || [];
      replace(fires,
        p.description ? h('p', {}, p.description) : null,
        entries.length
          ? h('ol', {class: 'fires'}, entries.map((e) => h('li', {},
            time(e.fire_time), ' ',
            e.disposition && e.disposition !== 'FIRES' ? badge(e.disposition) : null,
            e.why ? h('span', {class: 'muted why'}, ` ${e.why}`) : null)))
          : h('p', {class: 'muted'}, 'No run is due.'),
        p.ended ? h('p', {class: 'muted'}, `Ends: ${p.end_reason}`) : null);
    } catch (e) {
      replace(fires, h('p', {class: 'muted'}, `Preview unavailable: ${e.message}`));
    }
  }

  async function loadResults() {
    try {
      const fresh = await api('GET', base);
      job = fresh;
      showJob(job);
    } catch {
      // The job may be gone; the feed says so.
    }
    let page;
    try {
      page = await api('GET', `${base}/results${query({page_size: 50})}`);
    } catch (e) {
      replace(results, h('p', {class: 'muted'}, e.message));
      return;
    }
    const list = (page.results || []).slice().sort((a, b) => num(b.run_number) - num(a.run_number));
    if (!list.length) return replace(results, h('p', {class: 'muted'}, 'No runs yet.'));
    replace(results, h('div', {class: 'scroll'}, h('table', {class: 'results'},
      h('caption', {class: 'sr-only'}, 'Runs of this job, newest first'),
      h('thead', {}, h('tr', {}, ['Run', 'Status', 'Scheduled', 'Started', 'Ended', 'Details', 'Error']
        .map((c) => h('th', {scope: 'col'}, c)))),
      h('tbody', {}, list.map(resultRow)))));
  }
}

function resultRow(r) {
  const summary = detailsSummary(r.details);
  let pretty = r.details || '';
  try {
    if (pretty) pretty = JSON.stringify(JSON.parse(pretty), null, 2);
  } catch {
    // Shown as it came.
  }
  return h('tr', {dataset: {run: r.run_number}},
    h('td', {}, `#${r.run_number}`, r.manual ? ' (run now)' : '', r.backfill ? ' (backfill)' : ''),
    h('td', {}, badge(r.status)),
    h('td', {}, time(r.scheduled_time)),
    h('td', {}, time(r.start_time)),
    h('td', {}, time(r.end_time)),
    h('td', {}, summary ? h('span', {}, summary) : null,
      pretty ? h('details', {}, h('summary', {}, 'Provider details'), h('pre', {}, pretty)) : null),
    h('td', {class: r.error ? 'error' : ''}, r.error || ''));
}

function showActionInto(el, j) {
  const a = j.action || {};
  let body = a.body || '';
  try {
    body = JSON.stringify(JSON.parse(body), null, 2);
  } catch {
    // Shown as stored.
  }
  replace(el, h('dl', {class: 'facts'},
    h('dt', {}, 'Provider'), h('dd', {}, h('a', {href: `#/providers/${enc(a.provider || '')}`}, a.provider || '')),
    h('dt', {}, 'Body'), h('dd', {}, h('pre', {class: 'body'}, body))));
}
