// The action providers timerd has loaded: description, version, input schema.
import {api, enc} from './api.js';
import {h, replace} from './dom.js';

export async function renderProviders(main) {
  const list = (await api('GET', '/v1/providers')).action_providers || [];
  replace(main, h('h1', {}, 'Providers'),
    list.length ? h('ul', {class: 'cards'}, list.map((p) => h('li', {class: 'card'},
      h('h2', {}, h('a', {href: `#/providers/${enc(p.name)}`}, p.name)),
      h('p', {class: 'muted'}, `version ${p.version}, ABI ${p.abi_version}`),
      h('p', {}, p.description || ''))))
      : h('p', {}, 'No provider is loaded.'));
}

export async function renderProvider(main, {name}) {
  const p = await api('GET', `/v1/providers/${enc(name)}`);
  replace(main,
    h('p', {class: 'crumbs'}, h('a', {href: '#/providers'}, 'Providers'), ' / ', p.name),
    h('h1', {}, p.name),
    h('p', {class: 'muted'}, `version ${p.version}, ABI ${p.abi_version}`),
    h('p', {}, p.description || ''),
    h('h2', {}, 'Input schema'),
    h('pre', {class: 'body', tabindex: '0', 'aria-label': 'Input schema (JSON Schema)'}, pretty(p.input_schema)),
    p.configuration ? [h('h2', {}, 'What its configuration offers you'),
      h('pre', {class: 'body', tabindex: '0', 'aria-label': 'Configuration'}, pretty(p.configuration))] : null);
}

function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text || '';
  }
}
