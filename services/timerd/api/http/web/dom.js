// Building the page from data, safely: every value becomes a text node or an
// attribute set with setAttribute (never HTML markup), so a job name such as
// <img src=x onerror=alert(1)> is shown as the text it is.

// h('a', {href: '#/jobs', class: 'x', on: {click: fn}}, 'text', child, ...)
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'on') {
      for (const [type, fn] of Object.entries(v)) el.addEventListener(type, fn);
    } else if (k === 'class') {
      el.className = v;
    } else if (k === 'value' || k === 'checked' || k === 'selected' || k === 'disabled') {
      el[k] = v;
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// Replaces the children of `el` with `children`.
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let toastTimer = 0;
// A short message in the page's polite live region.
export function toast(text) {
  const t = document.getElementById('toast');
  t.textContent = text;
  t.classList.add('shown');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => t.classList.remove('shown'), 4000);
}

// A modal confirmation (the <dialog> element: focus is kept inside, Escape
// cancels). Resolves true when confirmed.
export function confirmDialog(title, text, confirmLabel) {
  return new Promise((resolve) => {
    const dlg = h('dialog', {class: 'confirm', 'aria-labelledby': 'dlg-title'},
      h('h2', {id: 'dlg-title'}, title),
      h('p', {}, text),
      h('div', {class: 'buttons'},
        h('button', {type: 'button', class: 'danger', on: {click: () => dlg.close('yes')}},
          confirmLabel),
        h('button', {type: 'button', autofocus: true, on: {click: () => dlg.close('no')}},
          'Cancel')));
    dlg.addEventListener('close', () => {
      resolve(dlg.returnValue === 'yes');
      dlg.remove();
    });
    document.body.append(dlg);
    dlg.showModal();
  });
}
