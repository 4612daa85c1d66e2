// Create a job, or edit one (name, label, schedule, stop conditions,
// policies: PATCH with update_mask). The server validates; its error names
// the field (`job.schedule.interval_seconds: must be > 0`) and is shown
// beside that field.
import {ApiError, api, enc, query, requestId} from './api.js';
import {h, replace, toast} from './dom.js';
import {time} from './format.js';
import {schemaForm} from './schema_form.js';

const UNITS = [['1', 'seconds'], ['60', 'minutes'], ['3600', 'hours'], ['86400', 'days']];

export async function renderEdit(main, {jobId}) {
  const editing = !!jobId;
  let job = null;
  if (editing) {
    try {
      job = await api('GET', `/v1/jobs/${enc(jobId)}`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        replace(main, h('h1', {}, 'Job not found'), h('p', {class: 'error', role: 'alert'}, 'Not found: ', e.message));
        return;
      }
      throw e;
    }
  }
  const s = (job && job.schedule) || {};

  // One labelled control with its help and its error line.
  const field = (id, labelText, ctl, help) => {
    ctl.id = id;
    if (help) ctl.setAttribute('aria-describedby', `${id}-help`);
    return h('div', {class: 'field', id: `row-${id}`},
      h('label', {for: id}, labelText), ctl,
      help ? h('p', {class: 'help', id: `${id}-help`}, help) : null,
      h('p', {class: 'field-error', id: `${id}-err`, hidden: true}));
  };
  const input = (path, attrs = {}) => h('input', {'data-field': path, autocomplete: 'off', ...attrs});
  const select = (path, options, value) => {
    const el = h('select', {'data-field': path}, options.map(([v, t]) => h('option', {value: v}, t)));
    el.value = value || options[0][0];
    return el;
  };

  const name = input('name', {type: 'text', value: (job && job.name) || ''});
  const label = input('label', {type: 'text', value: (job && job.label) || ''});
  const kindNow = s.cron ? 'cron' : s.calendar ? 'calendar' : s.once ? 'once' : 'interval';
  const kind = select('schedule', [['interval', 'Every interval'], ['once', 'Once'],
    ['cron', 'Cron expression'], ['calendar', 'Calendar (JSON)']], kindNow);
  let every = Number(s.interval_seconds || 3600);
  let unit = '1';
  for (const [u] of UNITS) if (every % Number(u) === 0) unit = u;
  const interval = input('schedule.interval_seconds', {type: 'number', inputmode: 'numeric',
    value: String(every / Number(unit))});
  const intervalUnit = select('schedule.interval_seconds', UNITS, unit);
  const start = input('schedule.start', {type: 'datetime-local', step: '1', value: localInput(s.start)});
  const cron = input('schedule.cron', {type: 'text', value: s.cron || '', placeholder: '0 2 * * *'});
  const calendar = h('textarea', {'data-field': 'schedule.calendar', rows: 4},
    s.calendar ? JSON.stringify(s.calendar, null, 2) : '{"include": [{"hours": "2", "days_of_week": "MON-FRI"}]}');
  const zone = input('schedule.time_zone', {type: 'text',
    value: s.time_zone || Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'});
  const dstGap = select('schedule.dst_gap', [['DST_GAP_RUN_AFTER', 'run after the gap'],
    ['DST_GAP_SKIP', 'skip'], ['DST_GAP_SHIFT', 'shift by the gap']], s.dst_gap);
  const dstRepeat = select('schedule.dst_repeat', [['DST_REPEAT_FIRST', 'first'],
    ['DST_REPEAT_LAST', 'last'], ['DST_REPEAT_BOTH', 'both']], s.dst_repeat);
  const jitter = input('schedule.jitter_seconds', {type: 'number', value: nz(s.jitter_seconds)});
  const catchUp = input('schedule.catch_up_window_seconds', {type: 'number', value: nz(s.catch_up_window_seconds)});
  const stopRuns = input('schedule.stop_after_runs', {type: 'number', value: s.stop_after_runs || ''});
  const stopDate = input('schedule.stop_after_date', {type: 'datetime-local', step: '1', value: localInput(s.stop_after_date)});
  const overlap = select('overlap_policy', [['SKIP', 'skip the new run'], ['BUFFER_ONE', 'queue one'],
    ['CANCEL_PREVIOUS', 'cancel the running one'], ['ALLOW', 'run side by side']],
  job && job.overlap_policy !== 'OVERLAP_POLICY_UNSPECIFIED' ? job.overlap_policy : 'SKIP');
  const maxConc = input('max_concurrent', {type: 'number', value: String((job && job.max_concurrent) || 1)});
  const missed = select('missed_run_policy', [['SKIP_MISSED', 'skip them'], ['RUN_ONCE', 'run once to catch up']],
    job && job.missed_run_policy !== 'MISSED_RUN_POLICY_UNSPECIFIED' ? job.missed_run_policy : 'SKIP_MISSED');

  const rows = {
    interval: field('f-interval', 'Every', interval),
    unit: field('f-unit', 'Unit', intervalUnit),
    cron: field('f-cron', 'Cron expression', cron, '5 fields (minute hour day month weekday), or 6 with seconds first.'),
    calendar: field('f-calendar', 'Calendar specs', calendar, 'A CalendarSchedule as JSON: include and exclude lists of specs (docs/API.md).'),
    zone: field('f-zone', 'Time zone', zone, 'IANA name, e.g. Europe/Berlin.'),
    dstGap: field('f-dst-gap', 'When a local time does not exist', dstGap),
    dstRepeat: field('f-dst-repeat', 'When a local time occurs twice', dstRepeat),
  };
  const zoned = [rows.zone, rows.dstGap, rows.dstRepeat];
  const showKind = () => {
    const k = kind.value;
    rows.interval.hidden = rows.unit.hidden = k !== 'interval';
    rows.cron.hidden = k !== 'cron';
    rows.calendar.hidden = k !== 'calendar';
    for (const r of zoned) r.hidden = k !== 'cron' && k !== 'calendar';
  };
  kind.addEventListener('change', showKind);

  // The action (on create): a provider and a body form from its schema.
  let bodyForm = null;
  let provider = null;
  const bodyHolder = h('div', {class: 'body-form'});
  const asJson = h('input', {type: 'checkbox', id: 'f-body-json'});
  const bodyJson = h('textarea', {'data-field': 'action.body', rows: 6}, '{}');
  const actionSet = editing ? null : await actionFields();

  const problem = h('div', {class: 'error', role: 'alert', id: 'form-error', hidden: true});
  const preview = h('div', {class: 'preview', id: 'preview', 'aria-live': 'polite'});
  const submit = h('button', {type: 'submit', id: 'f-submit'}, editing ? 'Save changes' : 'Create job');
  const form = h('form', {class: 'job-form', novalidate: true, on: {submit: onSubmit}},
    problem,
    field('f-name', 'Name', name),
    field('f-label', 'Label', label, 'Free text handed to the provider (a transfer\'s label).'),
    h('fieldset', {}, h('legend', {}, 'Schedule'),
      field('f-kind', 'Kind', kind),
      h('div', {class: 'inline'}, rows.interval, rows.unit),
      rows.cron, rows.calendar,
      field('f-start', 'Start (your time zone)', start, 'Empty: now. For "once": when it runs.'),
      rows.zone, rows.dstGap, rows.dstRepeat,
      field('f-jitter', 'Jitter (seconds)', jitter, 'Each run starts up to this long after its slot.'),
      field('f-catch-up', 'Catch-up window (seconds)', catchUp, 'After downtime, older slots are recorded as missed; 0: no window.'),
      h('button', {type: 'button', id: 'f-preview', on: {click: onPreview}}, 'Preview next runs'),
      preview),
    h('fieldset', {}, h('legend', {}, 'Stop conditions'),
      field('f-stop-runs', 'Stop after this many runs', stopRuns, 'Empty: no limit.'),
      field('f-stop-date', 'Stop after (your time zone)', stopDate, 'Empty: no end date.')),
    h('fieldset', {}, h('legend', {}, 'Policies'),
      field('f-overlap', 'When a run is due while one is active', overlap),
      field('f-max-conc', 'Most runs at once (run side by side)', maxConc),
      field('f-missed', 'Runs missed while timerd was down', missed)),
    actionSet,
    h('div', {class: 'buttons'}, submit,
      h('a', {href: editing ? `#/jobs/${enc(jobId)}` : '#/jobs', class: 'button secondary'}, 'Cancel')));
  replace(main,
    h('p', {class: 'crumbs'}, h('a', {href: '#/jobs'}, 'Jobs'),
      editing ? [' / ', h('a', {href: `#/jobs/${enc(jobId)}`}, job.name || jobId)] : null),
    h('h1', {}, editing ? `Edit “${job.name || jobId}”` : 'New job'),
    form);
  showKind();

  async function actionFields() {
    const list = (await api('GET', '/v1/providers')).action_providers || [];
    const names = list.map((p) => p.name);
    const sel = h('select', {'data-field': 'action.provider'}, names.map((n) => h('option', {value: n}, n)));
    sel.value = names.includes('noop') ? 'noop' : names[0] || '';
    const desc = h('p', {class: 'help', id: 'f-provider-help'});
    const pick = async () => {
      provider = await api('GET', `/v1/providers/${enc(sel.value)}`);
      desc.textContent = provider.description || '';
      let schema = null;
      try {
        schema = JSON.parse(provider.input_schema || '{}');
      } catch {
        schema = null;
      }
      bodyForm = schema ? schemaForm(schema) : null;
      asJson.checked = !bodyForm;
      asJson.disabled = !bodyForm;
      showBody();
    };
    sel.addEventListener('change', pick);
    asJson.addEventListener('change', showBody);
    await pick();
    return h('fieldset', {}, h('legend', {}, 'Action'),
      field('f-provider', 'Provider', sel, ''), desc,
      h('div', {class: 'field check'}, asJson, h('label', {for: 'f-body-json'}, 'Write the body as JSON')),
      bodyHolder);
  }

  function showBody() {
    if (asJson.checked) {
      if (bodyForm) bodyJson.value = JSON.stringify(bodyForm.value(), null, 2);
      replace(bodyHolder, field('f-body', 'Body (JSON)', bodyJson));
    } else {
      replace(bodyHolder, bodyForm.el);
    }
  }

  function readSchedule() {
    const out = {};
    if (start.value) out.start = new Date(start.value).toISOString();
    const k = kind.value;
    if (k === 'interval') {
      out.interval_seconds = interval.value === '' ? '0'
        : String(Math.round(Number(interval.value) * Number(intervalUnit.value)));
    } else if (k === 'once') {
      out.once = true;
    } else if (k === 'cron') {
      out.cron = cron.value;
    } else {
      try {
        out.calendar = JSON.parse(calendar.value);
      } catch (e) {
        throw new FieldError('schedule.calendar', `not JSON: ${e.message}`);
      }
    }
    if (k === 'cron' || k === 'calendar') {
      out.time_zone = zone.value.trim();
      out.dst_gap = dstGap.value;
      out.dst_repeat = dstRepeat.value;
    }
    if (jitter.value !== '') out.jitter_seconds = jitter.value;
    if (catchUp.value !== '') out.catch_up_window_seconds = catchUp.value;
    if (stopRuns.value !== '') out.stop_after_runs = stopRuns.value;
    if (stopDate.value) out.stop_after_date = new Date(stopDate.value).toISOString();
    return out;
  }

  async function onPreview() {
    clearErrors();
    try {
      const p = await api('POST', '/v1/schedules:preview', {schedule: readSchedule(), count: 5});
      replace(preview,
        h('p', {}, p.description || ''),
        h('ol', {class: 'fires'}, (p.entries || []).map((e) => h('li', {}, time(e.fire_time),
          e.why ? h('span', {class: 'muted why'}, ` ${e.why}`) : null))),
        p.ended ? h('p', {class: 'muted'}, `Ends: ${p.end_reason}`) : null);
    } catch (e) {
      replace(preview);
      showError(e, 'schedule.');
    }
  }

  async function onSubmit(ev) {
    ev.preventDefault();
    clearErrors();
    submit.disabled = true;
    try {
      const body = {
        name: name.value,
        label: label.value,
        schedule: readSchedule(),
        overlap_policy: overlap.value,
        max_concurrent: maxConc.value === '' ? 0 : Number(maxConc.value),
        missed_run_policy: missed.value,
      };
      let saved;
      if (editing) {
        body.etag = job.etag;
        saved = await api('PATCH', `/v1/jobs/${enc(jobId)}${query({
          update_mask: 'name,label,schedule,overlap_policy,max_concurrent,missed_run_policy',
        })}`, body);
      } else {
        let actionBody;
        if (asJson.checked) {
          actionBody = bodyJson.value;
        } else {
          actionBody = JSON.stringify(bodyForm.value());
        }
        body.action = {provider: provider.name, body: actionBody};
        saved = await api('POST', `/v1/jobs${query({request_id: requestId()})}`, body);
      }
      toast(editing ? 'Saved' : 'Created');
      location.hash = `#/jobs/${enc(saved.job_id)}`;
    } catch (e) {
      showError(e, '');
    } finally {
      submit.disabled = false;
    }
  }

  function clearErrors() {
    problem.hidden = true;
    problem.replaceChildren();
    for (const el of form.querySelectorAll('.field-error')) {
      el.hidden = true;
      el.textContent = '';
    }
    for (const el of form.querySelectorAll('[aria-invalid]')) {
      el.removeAttribute('aria-invalid');
      const ids = (el.getAttribute('aria-describedby') || '').split(' ').filter((x) => !x.endsWith('-err'));
      if (ids.length) el.setAttribute('aria-describedby', ids.join(' '));
      else el.removeAttribute('aria-describedby');
    }
  }

  // Shows an error beside the field its message names (the longest field
  // path that is a prefix of it), or above the form.
  function showError(e, pathPrefix) {
    let path = e instanceof FieldError ? e.path : '';
    let message = e.message;
    if (!path) {
      const m = /^([A-Za-z0-9_.[\]]+): ([\s\S]*)$/.exec(e.message);
      if (m) {
        path = m[1].replace(/^job\./, '');
        if (pathPrefix && !path.startsWith(pathPrefix) && path !== 'schedule') path = pathPrefix + path;
        message = m[2];
        // A provider's complaint about the body names a path inside it.
        const inner = /^([A-Za-z0-9_.[\]]+): ([\s\S]*)$/.exec(message);
        if (path === 'action.body' && inner) {
          path = `action.body.${inner[1].replace(/^\./, '')}`;
          message = inner[2];
        }
      }
    }
    const fields = [...form.querySelectorAll('[data-field]')].filter((el) => !el.closest('[hidden]'));
    let target = null;
    for (let p = path; p && !target;) {
      target = fields.find((el) => el.dataset.field === p);
      const shorter = p.replace(/(\.[^.[\]]+|\[\d+\])$/, '');
      if (shorter === p) break;
      p = shorter;
    }
    if (target) {
      const row = target.closest('.field');
      const err = row && row.querySelector('.field-error');
      if (err) {
        err.textContent = `${path}: ${message}`;
        err.hidden = false;
        if (target.matches('input, select, textarea')) {
          target.setAttribute('aria-invalid', 'true');
          if (err.id) {
            const d = target.getAttribute('aria-describedby');
            target.setAttribute('aria-describedby', d ? `${d} ${err.id}` : err.id);
          }
          target.focus();
        }
        return;
      }
    }
    problem.textContent = e.message;
    problem.hidden = false;
    problem.scrollIntoView({block: 'nearest'});
  }
}

class FieldError extends Error {
  constructor(path, message) {
    super(message);
    this.path = path;
  }
}

function nz(v) {
  return v && Number(v) !== 0 ? String(v) : '';
}

// An RFC 3339 time as a datetime-local value in the browser's zone.
function localInput(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
