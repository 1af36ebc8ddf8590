// The imgcap captioning page: pick or drop an image, choose models and options, and show one
// caption card per model with the time it took. Plain JavaScript, no dependencies.
(() => {
  'use strict';

  const $ = (id) => document.getElementById(id);
  const form = $('form');
  const fileInput = $('file');
  const drop = $('drop');
  const fileError = $('file-error');
  const previewBox = $('preview-box');
  const preview = $('preview');
  const fileInfo = $('file-info');
  const modelsBox = $('models');
  const modelsStatus = $('models-status');
  const prompt = $('prompt');
  const promptNote = $('prompt-note');
  const beams = $('beams');
  const maxTokens = $('max-tokens');
  const go = $('go');
  const status = $('status');
  const results = $('results');
  const cards = $('cards');

  const ACCEPTED_TYPES = ['image/jpeg', 'image/png', 'image/webp'];
  const ACCEPTED_NAMES = /\.(jpe?g|png|webp)$/i;

  let models = [];
  let limits = { max_upload_bytes: 20 << 20, max_pixels: 50e6, max_num_beams: 16, max_new_tokens: 512 };
  let file = null;
  let previewURL = null;
  let busy = false;

  function humanBytes(n) {
    if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
    if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
    return `${n} B`;
  }

  function humanTime(ms) {
    return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
  }

  function showFileError(msg) {
    fileError.textContent = msg || '';
    fileError.hidden = !msg;
  }

  function decoding() {
    return form.elements.decoding.value;
  }

  function chosenModels() {
    return models.filter((m, i) => $(`model-${i}`).checked);
  }

  function update() {
    const chosen = chosenModels();
    go.disabled = busy || !file || chosen.length === 0;
    go.textContent = chosen.length > 1 ? `Generate ${chosen.length} captions` : 'Generate caption';
    beams.disabled = decoding() !== 'beam';
    const takers = chosen.filter((m) => m.prompt);
    const others = chosen.filter((m) => !m.prompt);
    prompt.disabled = chosen.length > 0 && takers.length === 0;
    if (prompt.disabled) {
      promptNote.textContent = 'The chosen models take no prompt.';
    } else if (prompt.value && others.length > 0) {
      promptNote.textContent = `Not used by ${others.map((m) => m.name).join(', ')} (no prompt support).`;
    } else {
      promptNote.textContent = '';
    }
  }

  function clearFile() {
    file = null;
    if (previewURL) URL.revokeObjectURL(previewURL);
    previewURL = null;
    preview.removeAttribute('src');
    previewBox.hidden = true;
    update();
  }

  function setFile(f) {
    showFileError('');
    clearFile();
    if (!f) return;
    const typeOK = ACCEPTED_TYPES.includes(f.type) || (!f.type && ACCEPTED_NAMES.test(f.name));
    if (!typeOK) {
      showFileError(`“${f.name}” is not a JPEG, PNG or WebP image (type: ${f.type || 'unknown'}).`);
      return;
    }
    if (f.size === 0) {
      showFileError(`“${f.name}” is empty.`);
      return;
    }
    if (f.size > limits.max_upload_bytes) {
      showFileError(`“${f.name}” is ${humanBytes(f.size)}; the limit is ${humanBytes(limits.max_upload_bytes)}.`);
      return;
    }
    previewURL = URL.createObjectURL(f);
    preview.onload = () => {
      const px = preview.naturalWidth * preview.naturalHeight;
      if (px > limits.max_pixels) {
        showFileError(`“${f.name}” is ${preview.naturalWidth}×${preview.naturalHeight} pixels; the limit is ${Math.round(limits.max_pixels / 1e6)} million pixels.`);
        clearFile();
        return;
      }
      fileInfo.textContent = `${f.name} · ${preview.naturalWidth}×${preview.naturalHeight} · ${humanBytes(f.size)}`;
      preview.alt = `Preview of ${f.name}`;
      previewBox.hidden = false;
      file = f;
      update();
    };
    preview.onerror = () => {
      showFileError(`“${f.name}” could not be read as an image: the file is damaged or not really a JPEG, PNG or WebP.`);
      clearFile();
    };
    preview.src = previewURL;
  }

  async function loadModels() {
    try {
      const r = await fetch('api/models');
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const data = await r.json();
      models = data.models || [];
      limits = Object.assign(limits, data.limits || {});
    } catch (e) {
      modelsStatus.textContent = `Could not load the list of models: ${e.message}. Reload the page to retry.`;
      modelsStatus.classList.add('error');
      return;
    }
    $('max-size').textContent = humanBytes(limits.max_upload_bytes);
    beams.max = String(limits.max_num_beams);
    maxTokens.max = String(limits.max_new_tokens);
    modelsStatus.remove();
    if (models.length === 0) {
      modelsBox.append(Object.assign(document.createElement('p'), { className: 'error', textContent: 'This server has no models.' }));
      return;
    }
    models.forEach((m, i) => {
      const label = document.createElement('label');
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.id = `model-${i}`;
      box.name = 'model';
      box.value = m.name;
      box.checked = i === 0;
      box.addEventListener('change', update);
      const name = document.createElement('span');
      name.textContent = m.name;
      const arch = document.createElement('span');
      arch.className = 'arch';
      arch.textContent = m.arch;
      label.append(box, name, arch);
      modelsBox.append(label);
    });
    update();
  }

  function newCard(m) {
    const li = document.createElement('li');
    li.className = 'card pending';
    li.setAttribute('aria-busy', 'true');
    const h = document.createElement('h3');
    h.textContent = m.name;
    const arch = document.createElement('p');
    arch.className = 'arch';
    arch.textContent = m.arch;
    const caption = document.createElement('p');
    caption.className = 'caption';
    caption.textContent = 'Generating…';
    const time = document.createElement('p');
    time.className = 'time';
    li.append(h, arch, caption, time);
    cards.append(li);
    return { li, caption, time };
  }

  async function captionWith(m, image, opts) {
    const card = newCard(m);
    const body = new FormData();
    body.append('image', image, image.name);
    body.append('model', m.name);
    body.append('num_beams', opts.numBeams);
    if (opts.maxNewTokens) body.append('max_new_tokens', opts.maxNewTokens);
    if (opts.prompt && m.prompt) body.append('prompt', opts.prompt);
    const start = performance.now();
    try {
      let r;
      try {
        r = await fetch('api/caption', { method: 'POST', body });
      } catch (e) {
        throw new Error(`Could not reach the server (${e.message}).`);
      }
      let data;
      try {
        data = await r.json();
      } catch (e) {
        data = { error: `The server answered HTTP ${r.status} without a readable message.` };
      }
      if (!r.ok || data.error) throw new Error(data.error || `HTTP ${r.status}`);
      const c = (data.captions || [])[0] || { text: '', ids: [] };
      let text = c.text;
      if (!text) text = c.ids && c.ids.length ? `token ids: ${c.ids.join(' ')} (the model has no tokenizer)` : '(empty caption)';
      card.caption.textContent = text;
      const rtt = performance.now() - start;
      card.time.textContent = `${humanTime(data.ms)} on the server · ${humanTime(rtt)} in all` +
        (data.batch_size > 1 ? ` · batched with ${data.batch_size - 1} other image(s)` : '');
      card.li.classList.add('done');
    } catch (e) {
      card.li.classList.add('failed');
      card.caption.textContent = e.message;
      card.time.textContent = `after ${humanTime(performance.now() - start)}`;
    } finally {
      card.li.classList.remove('pending');
      card.li.removeAttribute('aria-busy');
    }
  }

  function readOptions() {
    const opts = { numBeams: '1', maxNewTokens: '', prompt: prompt.disabled ? '' : prompt.value };
    if (decoding() === 'beam') {
      const n = Number(beams.value);
      if (!Number.isInteger(n) || n < 2 || n > limits.max_num_beams) {
        throw new Error(`Beams must be a whole number from 2 to ${limits.max_num_beams}.`);
      }
      opts.numBeams = String(n);
    }
    const t = maxTokens.value.trim();
    if (t !== '') {
      const n = Number(t);
      if (!Number.isInteger(n) || n < 1 || n > limits.max_new_tokens) {
        throw new Error(`Max new tokens must be a whole number from 1 to ${limits.max_new_tokens}, or empty.`);
      }
      opts.maxNewTokens = String(n);
    }
    return opts;
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (go.disabled) return;
    let opts;
    try {
      opts = readOptions();
    } catch (e) {
      status.textContent = e.message;
      return;
    }
    const chosen = chosenModels();
    busy = true;
    update();
    cards.replaceChildren();
    results.hidden = false;
    status.textContent = chosen.length > 1 ? `Generating captions with ${chosen.length} models…` : 'Generating caption…';
    const start = performance.now();
    await Promise.all(chosen.map((m) => captionWith(m, file, opts)));
    const failed = cards.querySelectorAll('.card.failed').length;
    status.textContent = `Finished in ${humanTime(performance.now() - start)}` + (failed ? ` (${failed} failed).` : '.');
    busy = false;
    update();
  });

  fileInput.addEventListener('change', () => setFile(fileInput.files[0]));
  for (const el of document.querySelectorAll('input[name="decoding"]')) el.addEventListener('change', update);
  prompt.addEventListener('input', update);

  drop.addEventListener('dragenter', (ev) => { ev.preventDefault(); drop.classList.add('dragover'); });
  drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('dragover'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('dragover'));
  drop.addEventListener('drop', (ev) => {
    ev.preventDefault();
    drop.classList.remove('dragover');
    const f = ev.dataTransfer && ev.dataTransfer.files[0];
    if (f) setFile(f);
  });
  // A file dropped beside the drop zone must not replace the page.
  window.addEventListener('dragover', (ev) => ev.preventDefault());
  window.addEventListener('drop', (ev) => ev.preventDefault());
  // Paste an image from the clipboard.
  document.addEventListener('paste', (ev) => {
    const item = [...(ev.clipboardData ? ev.clipboardData.items : [])].find((it) => it.kind === 'file');
    if (item) setFile(item.getAsFile());
  });

  loadModels();
})();
