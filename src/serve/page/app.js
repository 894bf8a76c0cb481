// The demo page's script: loads the exported model and its sidecar, preprocesses a chosen image as
// slfer-model.json says (resize, centre crop, normalise), runs the model here in the page, and
// shows the expression probabilities (and ST's part mask when it was exported).
// The result is also left in window.slferResult and body[data-probabilities], for tests.
const tf = window.tf;
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

let model;
let sidecar;

async function useBackend(name) {
  // setBackend answers false when a backend cannot start here (webgpu without navigator.gpu, ...).
  if (!(await tf.setBackend(name).catch(() => false))) throw new Error(`backend ${name} is not available in this browser`);
  await tf.ready();
  document.body.dataset.backend = tf.getBackend();
}

async function start() {
  tf.wasm.setWasmPaths('/vendor/');
  sidecar = await (await fetch('/model/slfer-model.json')).json();
  const backend = params.get('backend') ?? 'webgl';
  $('backend').value = backend;
  try {
    await useBackend(backend);
  } catch {
    await useBackend('wasm');
    $('backend').value = 'wasm';
  }
  model = await tf.loadLayersModel('/model/model.json');
  const p = sidecar.input.preprocessing;
  $('model-info').textContent = `SLFER ${sidecar.variant} (${sidecar.segmentation ? 'ECT + ST' : 'ECT'}), ${sidecar.quantization === 'none' ? 'float32' : sidecar.quantization} weights; input ${p.cropSize}×${p.cropSize} from ${p.resize}×${p.resize}; backend ${tf.getBackend()}`;
  document.body.dataset.ready = 'true';
}

/** The model's input for one image, exactly as slfer-dist's test-time pipeline makes it. */
async function preprocess(file) {
  const { resize, cropSize } = sidecar.input.preprocessing;
  const { mean, std } = sidecar.input;
  // No colour conversion, no premultiplication: the trainer reads the file's bytes as they are.
  const bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  const canvas = new OffscreenCanvas(resize, resize);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(bitmap, 0, 0, resize, resize);
  bitmap.close();
  const off = Math.floor((resize - cropSize) / 2);
  const rgba = ctx.getImageData(off, off, cropSize, cropSize).data;
  const x = new Float32Array(cropSize * cropSize * 3);
  for (let i = 0; i < cropSize * cropSize; i++) for (let c = 0; c < 3; c++) x[i * 3 + c] = (rgba[i * 4 + c] / 255 - mean[c]) / std[c];
  const shown = $('input');
  shown.width = shown.height = cropSize;
  shown.getContext('2d').putImageData(new ImageData(rgba, cropSize, cropSize), 0, 0);
  return x;
}

async function classify(file) {
  $('status').textContent = `running on ${tf.getBackend()}…`;
  const S = sidecar.input.preprocessing.cropSize;
  const x = await preprocess(file);
  const input = tf.tensor4d(x, [1, S, S, 3]);
  const out = model.predict(input);
  const [probsT, segT] = Array.isArray(out) ? out : [out];
  const probs = Array.from(await probsT.data());
  let parts;
  if (segT) {
    const ids = tf.argMax(segT, -1);
    parts = await ids.data();
    ids.dispose();
  }
  tf.dispose([input, probsT, segT].filter(Boolean));
  showBars(probs);
  if (parts) showMask(parts, S);
  const probabilities = Object.fromEntries(sidecar.classNames.map((c, k) => [c, probs[k]]));
  window.slferResult = { image: file.name, backend: tf.getBackend(), probabilities };
  document.body.dataset.probabilities = JSON.stringify(probabilities);
  $('status').textContent = `${file.name}: ${sidecar.classNames[probs.indexOf(Math.max(...probs))]} (${tf.getBackend()})`;
}

function showBars(probs) {
  const best = probs.indexOf(Math.max(...probs));
  $('bars').replaceChildren(
    ...sidecar.classNames.map((name, k) => {
      const row = document.createElement('div');
      row.className = k === best ? 'bar best' : 'bar';
      row.dataset.class = name;
      row.innerHTML = `<span></span><div class="track"><div class="fill"></div></div><span class="value"></span>`;
      row.children[0].textContent = name;
      row.querySelector('.fill').style.width = `${(probs[k] * 100).toFixed(2)}%`;
      row.children[2].textContent = `${(probs[k] * 100).toFixed(1)}%`;
      return row;
    }),
  );
}

function showMask(parts, S) {
  const colours = sidecar.partColours;
  const img = new ImageData(S, S);
  for (let i = 0; i < S * S; i++) {
    const c = colours[parts[i]] ?? [150, 150, 150];
    img.data.set([c[0], c[1], c[2], 255], i * 4);
  }
  const canvas = $('mask');
  canvas.width = canvas.height = S;
  canvas.getContext('2d').putImageData(img, 0, 0);
  $('legend').replaceChildren(
    ...sidecar.partClassNames.map((n, k) => {
      const s = document.createElement('span');
      s.innerHTML = '<i></i>';
      s.firstChild.style.background = `rgb(${colours[k].join(',')})`;
      s.append(n);
      return s;
    }),
  );
  $('mask-figure').hidden = false;
}

function fail(e) {
  $('status').textContent = `error: ${e.message ?? e}`;
  document.body.dataset.error = String(e.message ?? e);
}

$('file').addEventListener('change', (ev) => {
  const f = ev.target.files?.[0];
  if (f) classify(f).catch(fail);
});
const drop = $('drop');
drop.addEventListener('dragover', (ev) => {
  ev.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (ev) => {
  ev.preventDefault();
  drop.classList.remove('over');
  const f = ev.dataTransfer?.files?.[0];
  if (f) classify(f).catch(fail);
});
$('backend').addEventListener('change', (ev) => {
  useBackend(ev.target.value).then(() => {
    $('status').textContent = `backend: ${tf.getBackend()}`;
  }, fail);
});

start().catch(fail);
