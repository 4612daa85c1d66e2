// A form for an action body, generated from the provider's input JSON Schema
// (GET /v1/providers/{name}): objects become fieldsets, strings, numbers and
// booleans inputs, enums selects, arrays of objects repeatable groups; a
// schema with alternatives at the top (oneOf, as transfer's two shapes) gets
// a choice of shape. Each control carries data-field="action.body.PATH" so a
// server error naming that path is shown beside it. What the form cannot
// express is written as JSON in the "as JSON" mode.
import {h} from './dom.js';

let seq = 0;

// Returns {el, value()}: the form and a function reading the body from it.
export function schemaForm(schema, prefix = 'action.body') {
  const root = schema;
  const resolve = (s) => {
    let guard = 0;
    while (s && s.$ref && guard++ < 16) {
      const path = s.$ref.replace(/^#\//, '').split('/');
      let t = root;
      for (const p of path) t = t && t[p];
      const rest = {...s};
      delete rest.$ref;
      s = {...(t || {}), ...rest};
    }
    return s || {};
  };
  const top = resolve(schema);
  if (Array.isArray(top.oneOf) && top.oneOf.every((o) => resolve(o).type === 'object')) {
    const alts = top.oneOf.map((o) => ({name: (o.$ref || '').split('/').pop() || 'shape', schema: resolve(o)}));
    const id = `sf-${++seq}`;
    const sel = h('select', {id}, alts.map((a, i) => h('option', {value: String(i)}, a.name.replace(/_/g, ' '))));
    const holder = h('div');
    let current = null;
    const pick = () => {
      current = objectForm(alts[Number(sel.value)].schema, prefix, resolve, null);
      holder.replaceChildren(current.el);
    };
    sel.addEventListener('change', pick);
    pick();
    return {
      el: h('div', {}, h('div', {class: 'field'}, h('label', {for: id}, 'Body shape'), sel), holder),
      value: () => current.value(),
    };
  }
  if (top.type === 'object' || top.properties) return objectForm(top, prefix, resolve, null);
  return null;  // Not expressible: the caller offers JSON.
}

function objectForm(schema, path, resolve, legend) {
  const required = new Set(schema.required || []);
  const fields = [];
  const box = legend ? h('fieldset', {}, h('legend', {}, legend)) : h('div', {class: 'schema-object'});
  for (const [name, raw] of Object.entries(schema.properties || {})) {
    const s = resolve(raw);
    const p = `${path}.${name}`;
    if (s.const !== undefined) {
      // A constant is sent only when required (e.g. a document's DATA_TYPE).
      if (required.has(name)) fields.push({name, value: () => s.const});
      continue;
    }
    const f = control(name, s, p, required.has(name), resolve);
    box.append(f.el);
    fields.push({name, value: f.value});
  }
  return {
    el: box,
    value: () => {
      const out = {};
      for (const f of fields) {
        const v = f.value();
        if (v !== undefined) out[f.name] = v;
      }
      return out;
    },
  };
}

function control(name, s, path, required, resolve) {
  const id = `sf-${++seq}`;
  const helpId = `${id}-help`;
  const label = h('label', {for: id}, name.replace(/_/g, ' '), required ? ' (required)' : '');
  const help = s.description ? h('p', {class: 'help', id: helpId}, s.description) : null;
  const attrs = {id, 'data-field': path, 'aria-describedby': help ? helpId : undefined};
  const wrap = (ctl, cls = 'field') => h('div', {class: cls}, label, ctl, help,
    h('p', {class: 'field-error', id: `${id}-err`, hidden: true}));

  if (s.type === 'object' && s.properties) {
    const sub = objectForm(s, path, resolve, name.replace(/_/g, ' '));
    return {el: sub.el, value: () => {
      const v = sub.value();
      return Object.keys(v).length || required ? v : undefined;
    }};
  }
  if (s.type === 'array' && s.items && resolve(s.items).type === 'object') {
    const itemSchema = resolve(s.items);
    const list = h('div', {class: 'array-items'});
    const items = [];
    const add = () => {
      const i = items.length;
      const sub = objectForm(itemSchema, `${path}[${i}]`, resolve, `${name.replace(/_/g, ' ')} ${i + 1}`);
      const entry = {sub, el: sub.el};
      const rm = h('button', {type: 'button', class: 'link', on: {click: () => {
        items.splice(items.indexOf(entry), 1);
        entry.el.remove();
      }}}, `Remove ${name.replace(/_/g, ' ')} ${i + 1}`);
      sub.el.append(rm);
      items.push(entry);
      list.append(sub.el);
    };
    for (let i = 0; i < Math.max(1, s.minItems || 0) && required; i++) add();
    const addBtn = h('button', {type: 'button', on: {click: add}}, `Add to ${name.replace(/_/g, ' ')}`);
    return {
      el: h('div', {class: 'field array', 'data-field': path}, h('p', {class: 'array-label'}, name.replace(/_/g, ' ')),
        help, list, addBtn, h('p', {class: 'field-error', hidden: true})),
      value: () => (items.length || required ? items.map((e) => e.sub.value()) : undefined),
    };
  }
  if (s.type === 'boolean') {
    const cb = h('input', {...attrs, type: 'checkbox', checked: s.default === true});
    return {
      el: h('div', {class: 'field check'}, cb, label, help,
        h('p', {class: 'field-error', id: `${id}-err`, hidden: true})),
      value: () => (cb.checked === (s.default === true) ? undefined : cb.checked),
    };
  }
  if (Array.isArray(s.enum)) {
    const sel = h('select', attrs,
      h('option', {value: ''}, required ? 'Choose…' : '(unset)'),
      s.enum.map((v) => h('option', {value: JSON.stringify(v)}, String(v))));
    return {el: wrap(sel), value: () => (sel.value ? JSON.parse(sel.value) : undefined)};
  }
  if (s.type === 'integer' || s.type === 'number') {
    const inp = h('input', {...attrs, type: 'number', inputmode: 'numeric',
      placeholder: s.default !== undefined ? String(s.default) : undefined});
    return {el: wrap(inp), value: () => (inp.value === '' ? undefined : Number(inp.value))};
  }
  if (s.type === 'array') {
    const ta = h('textarea', {...attrs, rows: 2, placeholder: 'one per line'});
    return {el: wrap(ta), value: () => {
      const lines = ta.value.split('\n').map((x) => x.trim()).filter(Boolean);
      return lines.length ? lines : undefined;
    }};
  }
  // Strings, and anything else (e.g. a oneOf of names and numbers): text,
  // read as a number when it is one and the schema allows one.
  const inp = h('input', {...attrs, type: 'text', autocomplete: 'off'});
  const numeric = !s.type && JSON.stringify(s).includes('"integer"');
  return {el: wrap(inp), value: () => {
    const v = inp.value;
    if (v === '') return required ? '' : undefined;
    return numeric && /^-?\d+$/.test(v) ? Number(v) : v;
  }};
}
