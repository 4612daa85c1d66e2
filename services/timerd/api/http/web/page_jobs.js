// The jobs list: status, schedule in words, next run, last result, run and
// error counts; filters by status and name; pages of up to 1000 jobs, more
// with "Load more" (page_token).
import {api, query} from './api.js';
import {h, replace} from './dom.js';
import {badge, num, scheduleWords, time} from './format.js';

const STATUSES = ['NEW', 'LOADED', 'UPDATED', 'PAUSED', 'ENDED'];
const kPageSize = 1000;

export async function renderJobs(main, {query: q}) {
  const statusSel = h('select', {id: 'f-status', name: 'status'},
    h('option', {value: ''}, 'Any'),
    STATUSES.map((s) => h('option', {value: s}, s)));
  statusSel.value = q.get('status') || '';
  const nameIn = h('input', {id: 'f-name', name: 'name', type: 'search', value: q.get('name') || ''});
  const count = h('p', {class: 'muted', id: 'jobs-count', 'aria-live': 'polite'});
  const tbody = h('tbody');
  const more = h('button', {type: 'button', hidden: true, on: {click: loadMore}}, 'Load more');
  const table = h('table', {class: 'jobs'},
    h('caption', {class: 'sr-only'}, 'Your jobs'),
    h('thead', {}, h('tr', {},
      ['Name', 'Status', 'Schedule', 'Next run', 'Last result', 'Runs', 'Errors']
        .map((c) => h('th', {scope: 'col'}, c)))),
    tbody);
  replace(main,
    h('div', {class: 'title-row'}, h('h1', {}, 'Jobs'), h('a', {href: '#/new', class: 'button'}, 'New job')),
    h('form', {class: 'filters', role: 'search', on: {submit: (e) => e.preventDefault()}},
      h('div', {class: 'field'}, h('label', {for: 'f-status'}, 'Status'), statusSel),
      h('div', {class: 'field'}, h('label', {for: 'f-name'}, 'Name contains'), nameIn)),
    count,
    h('div', {class: 'scroll'}, table),
    more);

  const jobs = [];
  let nextToken = '';
  statusSel.addEventListener('change', render);
  nameIn.addEventListener('input', render);
  await loadMore();

  // Loads up to kPageSize more jobs: a page may end early (the server's
  // max_list_page_bytes; the full view carries each job's last 10 results),
  // so pages are fetched until that many came or there are no more, each
  // rendered as it arrives.
  async function loadMore() {
    more.disabled = true;
    let got = 0;
    do {
      const page = await api('GET', `/v1/jobs${query({
        page_size: kPageSize - got, page_token: nextToken, view: 'JOB_VIEW_FULL',
      })}`);
      const list = page.jobs || [];
      got += list.length;
      jobs.push(...list);
      nextToken = page.next_page_token || '';
      render();
    } while (nextToken && got < kPageSize && main.isConnected);
    more.hidden = !nextToken;
    more.disabled = false;
  }

  function render() {
    const status = statusSel.value;
    const name = nameIn.value.trim().toLowerCase();
    const shown = jobs.filter((j) => (!status || j.status === status) &&
      (!name || (j.name || '').toLowerCase().includes(name)));
    const frag = document.createDocumentFragment();
    for (const j of shown) frag.append(row(j));
    tbody.replaceChildren(frag);
    count.textContent = `${shown.length} of ${jobs.length} job${jobs.length === 1 ? '' : 's'} loaded` +
      (nextToken ? ' (more to load)' : '');
    main.dataset.rendered = String(shown.length);
    performance.mark('timer-jobs-rendered');  // bench/web/list_bench.mjs
  }
}

function row(j) {
  const last = (j.results || [])[0];
  return h('tr', {},
    h('td', {}, h('a', {href: `#/jobs/${encodeURIComponent(j.job_id)}`}, j.name || j.job_id)),
    h('td', {}, badge(j.status)),
    h('td', {}, scheduleWords(j.schedule)),
    h('td', {}, time(j.next_run)),
    h('td', {}, last ? [badge(last.status), ' ', h('span', {class: 'muted'}, `#${last.run_number}`)] : h('span', {class: 'muted'}, '—')),
    h('td', {class: 'num'}, String(num(j.n_runs))),
    h('td', {class: 'num'}, String(num(j.n_errors))));
}
