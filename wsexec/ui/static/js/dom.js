// Building elements from text nodes only: every string from the API stays text, so none of it can be markup.

export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (name === 'class') element.className = value;
    else if (name === 'dataset') Object.assign(element.dataset, value);
    else if (name in element && typeof value !== 'string') element[name] = value;
    else element.setAttribute(name, value === true ? '' : value);
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

export function when(seconds) {
  if (seconds === undefined || seconds === null) return '';
  return new Date(seconds * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function duration(start, end) {
  if (!start) return '';
  const seconds = (end || Date.now() / 1000) - start;
  return seconds < 60 ? `${seconds.toFixed(1)} s` : `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

export function stateBadge(state) {
  return h('span', { class: `state state-${String(state).toLowerCase()}`, dataset: { state } }, state);
}

// A form's named fields as an object; empty fields are left out, so the API applies its defaults.
export function formValues(form) {
  const values = {};
  for (const [name, value] of new FormData(form).entries()) {
    if (typeof value === 'string' && value.trim() !== '') values[name] = value.trim();
  }
  return values;
}

export function field(label, input) {
  return h('label', { class: 'field' }, h('span', {}, label), input);
}

export function select(name, options, selected) {
  return h('select', { name }, options.map(([value, text]) =>
    h('option', { value, selected: value === (selected ?? '') }, text)));
}
