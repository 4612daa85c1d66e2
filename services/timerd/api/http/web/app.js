// The web view: a hash router over the pages, sign-in and the header.
// Each page is a function (main, params, signal) rendering into <main>; the
// AbortSignal ends its requests and streams when the user navigates away.
import {api, clearToken, setToken, setUnauthenticatedHandler, token} from './api.js';
import {h, replace, toast} from './dom.js';
import {renderJobs} from './page_jobs.js';
import {renderJob} from './page_job.js';
import {renderEdit} from './page_edit.js';
import {renderProviders, renderProvider} from './page_providers.js';

const main = document.getElementById('main');
let session = null;  // GET /v1/session, once signed in.
let current = null;  // The AbortController of the page shown.

// Each route renders into a fresh <div class="view"> put in <main> at once,
// so a page still loading when the user moved on renders into a detached
// element and never over the page that replaced it.
const routes = [
  [/^#\/jobs\/?$/, (v, m, q) => renderJobs(v, {query: q})],
  [/^#\/new\/?$/, (v, m, q) => renderEdit(v, {jobId: null, query: q})],
  [/^#\/jobs\/([^/?]+)\/edit$/, (v, m) => renderEdit(v, {jobId: decodeURIComponent(m[1])})],
  [/^#\/jobs\/([^/?]+)$/, (v, m) => renderJob(v, {jobId: decodeURIComponent(m[1])})],
  [/^#\/providers\/?$/, (v) => renderProviders(v)],
  [/^#\/providers\/([^/?]+)$/, (v, m) => renderProvider(v, {name: decodeURIComponent(m[1])})],
];

function signalOf() {
  if (current) current.abort();
  current = new AbortController();
  return current.signal;
}

async function route() {
  const signal = signalOf();
  const hash = location.hash || '#/jobs';
  if (!token()) return renderSignIn();
  if (!session) {
    // Who the token is, asked beside the page's own first requests (not
    // before them); a refused token sends every request to sign-in.
    session = api('GET', '/v1/session');
    session.then((s) => {
      session = s;
      showWho();
    }, () => {
      session = null;  // A 401 went to sign-in; other failures show on the page.
    });
  }
  const [path, q] = hash.split('?');
  const params = new URLSearchParams(q || '');
  for (const [re, render] of routes) {
    const m = path.match(re);
    if (m) {
      const view = h('div', {class: 'view', id: 'view'});
      replace(main, view);
      try {
        await render(view, m, params, signal);
      } catch (e) {
        if (e.name !== 'AbortError' && !signal.aborted) showError(view, e);
      }
      if (!signal.aborted) focusMain();
      return;
    }
  }
  location.replace('#/jobs');
}

function focusMain() {
  // Moves focus to the new page's heading for keyboard and screen-reader users.
  const h1 = main.querySelector('h1');
  if (h1) {
    h1.setAttribute('tabindex', '-1');
    h1.focus({preventScroll: true});
  }
}

function showError(view, e) {
  replace(view, h('h1', {}, 'Something went wrong'), h('p', {class: 'error'}, e.message));
}

function showWho() {
  const who = document.getElementById('who');
  const known = session && !(session instanceof Promise);
  document.getElementById('nav').hidden = !known;
  if (!known) return replace(who);
  replace(who,
    h('span', {class: 'identity', title: `signed in with a ${session.auth_method || 'token'}`},
      session.identity),
    h('button', {type: 'button', class: 'link', on: {click: signOut}}, 'Sign out'));
}

function signOut() {
  clearToken();
  signInProblem = '';
  session = null;
  showWho();
  toast('Signed out');
  if (location.hash === '#/signin') route();
  else location.hash = '#/signin';
}

function renderSignIn(problem) {
  problem = problem || signInProblem;  // Kept until another token is tried.
  session = null;
  showWho();
  const input = h('textarea', {
    id: 'token', name: 'token', rows: 3, required: true, autocomplete: 'off', spellcheck: 'false',
    'aria-describedby': 'token-help' + (problem ? ' token-error' : ''),
  });
  const form = h('form', {class: 'card signin', on: {submit: onSubmit}},
    h('label', {for: 'token'}, 'Token'),
    input,
    h('p', {id: 'token-help', class: 'help'},
      'A token from `timerd token issue` (scripts/run.sh prints one) or a JWT. ',
      'It is kept for this browser tab only and sent as an Authorization header.'),
    problem ? h('p', {id: 'token-error', class: 'error', role: 'alert'}, problem) : null,
    h('button', {type: 'submit'}, 'Sign in'));
  replace(main, h('h1', {}, 'Sign in'), form);
  input.focus();

  async function onSubmit(ev) {
    ev.preventDefault();
    const t = input.value.trim();
    if (!t) return;
    setToken(t);
    session = null;
    signInProblem = '';
    if (location.hash === '#/signin' || !location.hash) location.hash = '#/jobs';
    else route();
  }
}

// Any request refused for its credentials (401): the token is forgotten and
// the user asked for another.
let signInProblem = '';
setUnauthenticatedHandler(() => {
  clearToken();
  session = null;
  signInProblem = 'That token was refused (unknown, expired or revoked); paste a valid one.';
  if (location.hash !== '#/signin') location.hash = '#/signin';
  else route();
});

window.addEventListener('hashchange', route);
route();
