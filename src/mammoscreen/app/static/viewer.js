/* mammoscreen reader study: the reading screen.
 *
 * Plain JavaScript, no libraries. Each image arrives as 16-bit pixel values (little-endian uint16, one
 * level of a pyramid halved per level); window/level maps them to grey levels on a canvas, so the full
 * 16-bit range stays adjustable. The coarsest level that still fills the screen is fetched first and
 * finer levels when zooming in, up to the full resolution (level 0). The AI's saliency map (aided reading
 * only) is an 8-bit PNG drawn in colour over the image.
 */
(function () {
  'use strict';

  var root = document.getElementById('reader');
  var config = JSON.parse(root.dataset.config);
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var FOUR = ['R-CC', 'L-CC', 'R-MLO', 'L-MLO'];
  var MAGNIFIER_RADIUS = 110;
  var MAGNIFIER_ZOOM = 3;

  var $ = function (id) { return document.getElementById(id); };
  var state = {
    data: null, position: config.position, layout: 'four', single: 'R-CC', tool: 'pan',
    overlay: false, overlayShown: false, marks: [], wl: { shift: 0, factor: 1 },
    activeMs: 0, activeSince: null, busy: false, panels: []
  };
  window.readerApp = state; // for tests and the curious: read-only use, please

  // ------------------------------------------------------------------------------------------
  // Time spent: counted while the page is visible and focused
  // ------------------------------------------------------------------------------------------
  function activeNow() { return document.visibilityState === 'visible' && document.hasFocus(); }
  function tick() {
    var now = performance.now();
    if (state.activeSince !== null) { state.activeMs += now - state.activeSince; }
    state.activeSince = activeNow() ? now : null;
  }
  document.addEventListener('visibilitychange', tick);
  window.addEventListener('focus', tick);
  window.addEventListener('blur', tick);
  function elapsed() { tick(); return Math.round(state.activeMs); }

  // ------------------------------------------------------------------------------------------
  // Server
  // ------------------------------------------------------------------------------------------
  function api(path, options) {
    options = options || {};
    options.credentials = 'same-origin';
    options.headers = Object.assign({ 'X-CSRF-Token': csrf }, options.headers || {});
    return fetch('/api/sessions/' + config.session + path, options).then(function (response) {
      if (response.status === 401) { window.location = '/login'; throw new Error('logged out'); }
      return response;
    });
  }
  function json(response) {
    return response.json().then(function (body) {
      if (!response.ok) { throw new Error(body.error || ('error ' + response.status)); }
      return body;
    });
  }

  // ------------------------------------------------------------------------------------------
  // Colour map of the saliency overlay (the map's probability t, 0-1): transparent below 0.08, then
  // yellow turning red and more opaque as t grows
  // ------------------------------------------------------------------------------------------
  function overlayColour(v) {
    var t = v / 255;
    var alpha = t < 0.08 ? 0 : Math.round(Math.min(220, 90 + 260 * t));
    return [255, Math.round(230 * (1 - Math.min(1, t * 1.5))), 0, alpha];
  }

  // ------------------------------------------------------------------------------------------
  // One image panel
  // ------------------------------------------------------------------------------------------
  function Panel(container, images) {
    this.images = images;
    this.index = 0;
    this.el = document.createElement('div');
    this.el.className = 'panel';
    this.canvas = document.createElement('canvas');
    this.el.appendChild(this.canvas);
    this.label = document.createElement('div');
    this.el.appendChild(this.label);
    this.info = document.createElement('div');
    this.info.className = 'info';
    this.el.appendChild(this.info);
    if (images.length > 1) {
      var more = document.createElement('button');
      more.type = 'button';
      more.className = 'more';
      more.textContent = 'next image';
      var self = this;
      more.addEventListener('click', function () { self.index = (self.index + 1) % self.images.length; self.start(); });
      this.el.appendChild(more);
    }
    container.appendChild(this.el);
    this.bind();
    this.start();
  }

  Panel.prototype.image = function () { return this.images[this.index]; };

  Panel.prototype.start = function () {
    var im = this.image();
    this.levels = {};          // level -> Uint16Array
    this.rendered = {};        // level -> {canvas, key}
    this.loading = {};
    this.overlayCanvas = null;
    this.view = null;          // {scale, tx, ty}: screen = display image px * scale + t
    this.magnifier = null;
    var count = this.images.length > 1 ? ' (' + (this.index + 1) + '/' + this.images.length + ')' : '';
    this.label.textContent = im.view.replace('-', ' ') + count;
    this.label.className = 'label ' + (im.view[0] === 'R' ? 'left' : 'right');
    this.el.dataset.view = im.view;
    this.el.dataset.image = im.id;
    this.el.dataset.level = '';
    this.resize();
    this.fit();
    this.ensureLevel();
    if (state.overlay) { this.loadOverlay(); }
  };

  Panel.prototype.resize = function () {
    var rect = this.el.getBoundingClientRect();
    var dpr = window.devicePixelRatio || 1;
    this.dpr = dpr;
    this.width = Math.max(1, Math.round(rect.width * dpr));
    this.height = Math.max(1, Math.round(rect.height * dpr));
    this.canvas.width = this.width;
    this.canvas.height = this.height;
  };

  // Fit the whole image, chest wall towards the centre of the hanging (right breasts on the right edge of
  // their panel, left breasts on the left edge), as the standard mirrored hanging protocol shows them.
  Panel.prototype.fit = function () {
    var im = this.image();
    var scale = Math.min(this.width / im.width, this.height / im.height);
    var w = im.width * scale;
    var tx = state.layout === 'four' ? (im.view[0] === 'R' ? this.width - w : 0) : (this.width - w) / 2;
    this.view = { scale: scale, tx: tx, ty: (this.height - im.height * scale) / 2 };
  };

  // The level whose pixels are closest to (not coarser than) the screen's pixels at the current zoom.
  Panel.prototype.wantedLevel = function (scale) {
    var im = this.image();
    var level = Math.floor(Math.log2(1 / Math.max(scale, 1e-6)));
    return Math.max(0, Math.min(im.levels.length - 1, level));
  };

  Panel.prototype.ensureLevel = function (level) {
    if (level === undefined) { level = this.wantedLevel(this.view.scale); }
    var self = this;
    var im = this.image();
    if (this.levels[level] || this.loading[level]) { this.draw(); return; }
    this.loading[level] = true;
    api('/images/' + im.id + '/pixels/' + level).then(function (response) {
      if (!response.ok) { throw new Error('image ' + im.view + ' could not be loaded (' + response.status + ')'); }
      return response.arrayBuffer();
    }).then(function (buffer) {
      if (self.image() !== im) { return; }
      self.levels[level] = new Uint16Array(buffer);
      self.loading[level] = false;
      self.draw();
      checkReady();
    }).catch(function (error) { self.loading[level] = false; status(error.message, true); });
  };

  Panel.prototype.window = function () {
    var w = this.image().window;
    var width = Math.max(1, (w[1] - w[0]) * state.wl.factor);
    var centre = (w[0] + w[1]) / 2 + state.wl.shift * (w[1] - w[0]);
    return [centre - width / 2, centre + width / 2];
  };

  // Grey levels of one level under the current window, mirrored when the image is stored mirrored.
  Panel.prototype.renderLevel = function (level) {
    var im = this.image();
    var win = this.window();
    var key = win[0].toFixed(2) + ':' + win[1].toFixed(2);
    var cached = this.rendered[level];
    if (cached && cached.key === key) { return cached.canvas; }
    var size = im.levels[level];
    var w = size[0], h = size[1];
    var pixels = this.levels[level];
    var lut = new Uint8ClampedArray(65536);
    var low = win[0], span = win[1] - win[0];
    for (var v = 0; v < 65536; v++) { lut[v] = ((v - low) / span) * 255; }
    var canvas = cached ? cached.canvas : document.createElement('canvas');
    canvas.width = w; canvas.height = h;
    var ctx = canvas.getContext('2d');
    var out = ctx.createImageData(w, h);
    var data = out.data;
    var u32 = new Uint32Array(data.buffer);
    for (var y = 0; y < h; y++) {
      var row = y * w;
      for (var x = 0; x < w; x++) {
        var g = lut[pixels[row + x]];
        u32[row + (im.flip ? w - 1 - x : x)] = 0xff000000 | (g << 16) | (g << 8) | g;
      }
    }
    ctx.putImageData(out, 0, 0);
    this.rendered[level] = { canvas: canvas, key: key };
    return canvas;
  };

  Panel.prototype.bestLoaded = function (wanted) {
    var im = this.image();
    for (var l = wanted; l < im.levels.length; l++) { if (this.levels[l]) { return l; } }
    for (l = wanted - 1; l >= 0; l--) { if (this.levels[l]) { return l; } }
    return -1;
  };

  Panel.prototype.drawImageAt = function (ctx, view, level) {
    var im = this.image();
    var source = this.renderLevel(level);
    ctx.imageSmoothingEnabled = view.scale < 4;
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(source, view.tx, view.ty, im.width * view.scale, im.height * view.scale);
    if (state.overlay && this.overlayCanvas) {
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(this.overlayCanvas, view.tx, view.ty, im.width * view.scale, im.height * view.scale);
    }
  };

  Panel.prototype.draw = function () {
    if (this.drawPending) { return; }
    this.drawPending = true;
    var self = this;
    requestAnimationFrame(function () { self.drawPending = false; self.drawNow(); });
  };

  Panel.prototype.drawNow = function () {
    var ctx = this.canvas.getContext('2d');
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, this.width, this.height);
    var wanted = this.wantedLevel(this.view.scale);
    var level = this.bestLoaded(wanted);
    if (level < 0) { return; }
    this.drawImageAt(ctx, this.view, level);
    this.el.dataset.level = String(level);
    this.drawMarks(ctx);
    if (this.magnifier) { this.drawMagnifier(ctx); }
    var win = this.window();
    this.info.textContent = 'zoom ' + this.view.scale.toFixed(2) + '  W ' + Math.round(win[1] - win[0]) +
      ' L ' + Math.round((win[0] + win[1]) / 2) + (level > 0 ? '  (level ' + level + ')' : '  (full resolution)');
  };

  Panel.prototype.drawMagnifier = function (ctx) {
    var m = this.magnifier;
    var r = MAGNIFIER_RADIUS * this.dpr;
    var scale = this.view.scale * MAGNIFIER_ZOOM;
    var view = { scale: scale, tx: m.x - (m.x - this.view.tx) * MAGNIFIER_ZOOM,
                 ty: m.y - (m.y - this.view.ty) * MAGNIFIER_ZOOM };
    var level = this.bestLoaded(this.wantedLevel(scale));
    ctx.save();
    ctx.beginPath();
    ctx.arc(m.x, m.y, r, 0, 2 * Math.PI);
    ctx.clip();
    ctx.fillStyle = '#000';
    ctx.fillRect(m.x - r, m.y - r, 2 * r, 2 * r);
    this.drawImageAt(ctx, view, level);
    ctx.restore();
    ctx.strokeStyle = '#fbbf24';
    ctx.lineWidth = 2 * this.dpr;
    ctx.beginPath();
    ctx.arc(m.x, m.y, r, 0, 2 * Math.PI);
    ctx.stroke();
  };

  // Stored-image pixel <-> screen (canvas) pixel.
  Panel.prototype.toScreen = function (x, y) {
    var im = this.image();
    var dx = im.flip ? im.width - x : x;
    return [dx * this.view.scale + this.view.tx, y * this.view.scale + this.view.ty];
  };
  Panel.prototype.toImage = function (sx, sy) {
    var im = this.image();
    var dx = (sx - this.view.tx) / this.view.scale;
    return [im.flip ? im.width - dx : dx, (sy - this.view.ty) / this.view.scale];
  };

  Panel.prototype.drawMarks = function (ctx) {
    var im = this.image();
    var self = this;
    state.marks.forEach(function (mark, k) {
      if (mark.image !== im.id) { return; }
      var p = self.toScreen(mark.x, mark.y);
      ctx.strokeStyle = '#22d3ee';
      ctx.lineWidth = 2 * self.dpr;
      ctx.beginPath();
      ctx.arc(p[0], p[1], 14 * self.dpr, 0, 2 * Math.PI);
      ctx.stroke();
      ctx.fillStyle = '#22d3ee';
      ctx.font = (13 * self.dpr) + 'px sans-serif';
      ctx.fillText(String(k + 1), p[0] + 16 * self.dpr, p[1] - 10 * self.dpr);
    });
  };

  Panel.prototype.loadOverlay = function () {
    var im = this.image();
    var self = this;
    if (!im.overlay || this.overlayCanvas || this.overlayLoading) { this.draw(); return; }
    this.overlayLoading = true;
    api('/images/' + im.id + '/overlay').then(function (response) {
      if (!response.ok) { throw new Error('the AI map could not be loaded (' + response.status + ')'); }
      return response.blob();
    }).then(function (blob) { return createImageBitmap(blob); }).then(function (bitmap) {
      if (self.image() !== im) { return; }
      var canvas = document.createElement('canvas');
      canvas.width = bitmap.width; canvas.height = bitmap.height;
      var ctx = canvas.getContext('2d');
      ctx.drawImage(bitmap, 0, 0);
      var pixels = ctx.getImageData(0, 0, canvas.width, canvas.height);
      var d = pixels.data;
      var out = ctx.createImageData(canvas.width, canvas.height);
      for (var y = 0; y < canvas.height; y++) {
        for (var x = 0; x < canvas.width; x++) {
          var i = (y * canvas.width + x) * 4;
          var c = overlayColour(d[i]);
          var j = (y * canvas.width + (im.flip ? canvas.width - 1 - x : x)) * 4;
          out.data[j] = c[0]; out.data[j + 1] = c[1]; out.data[j + 2] = c[2]; out.data[j + 3] = c[3];
        }
      }
      ctx.putImageData(out, 0, 0);
      self.overlayCanvas = canvas;
      self.overlayLoading = false;
      self.el.dataset.overlay = 'loaded';
      self.draw();
    }).catch(function (error) { self.overlayLoading = false; status(error.message, true); });
  };

  Panel.prototype.bind = function () {
    var self = this;
    var drag = null;
    var point = function (event) {
      var rect = self.canvas.getBoundingClientRect();
      return [(event.clientX - rect.left) * self.dpr, (event.clientY - rect.top) * self.dpr];
    };
    this.canvas.addEventListener('contextmenu', function (event) { event.preventDefault(); });
    this.canvas.addEventListener('wheel', function (event) {
      event.preventDefault();
      var p = point(event);
      var factor = Math.exp(-event.deltaY * 0.0015);
      var v = self.view;
      var scale = Math.min(Math.max(v.scale * factor, 0.02), 16);
      v.tx = p[0] - (p[0] - v.tx) * scale / v.scale;
      v.ty = p[1] - (p[1] - v.ty) * scale / v.scale;
      v.scale = scale;
      self.ensureLevel();
    }, { passive: false });
    this.canvas.addEventListener('pointerdown', function (event) {
      var p = point(event);
      var tool = event.button === 2 ? 'wl' : state.tool;
      if (tool === 'mark' && event.button === 0) { addMark(self, p); return; }
      self.canvas.setPointerCapture(event.pointerId);
      drag = { tool: tool, x: p[0], y: p[1], wl: Object.assign({}, state.wl) };
      if (tool === 'magnify') {
        self.magnifier = { x: p[0], y: p[1] };
        self.ensureLevel(self.wantedLevel(self.view.scale * MAGNIFIER_ZOOM));
      }
    });
    this.canvas.addEventListener('pointermove', function (event) {
      if (!drag) { return; }
      var p = point(event);
      var dx = p[0] - drag.x, dy = p[1] - drag.y;
      if (drag.tool === 'pan') {
        self.view.tx += dx; self.view.ty += dy;
        drag.x = p[0]; drag.y = p[1];
        self.draw();
      } else if (drag.tool === 'wl') {
        state.wl.factor = Math.max(0.02, drag.wl.factor * Math.exp(dx / (300 * self.dpr)));
        state.wl.shift = drag.wl.shift + dy / (400 * self.dpr);
        redrawAll();
      } else if (drag.tool === 'magnify') {
        self.magnifier = { x: p[0], y: p[1] };
        self.draw();
      }
    });
    var end = function () {
      if (drag && drag.tool === 'magnify') { self.magnifier = null; self.draw(); }
      drag = null;
    };
    this.canvas.addEventListener('pointerup', end);
    this.canvas.addEventListener('pointercancel', end);
  };

  function redrawAll() { state.panels.forEach(function (p) { p.draw(); }); }

  // ------------------------------------------------------------------------------------------
  // Layout, tools, overlay
  // ------------------------------------------------------------------------------------------
  function buildPanels() {
    var container = $('panels');
    container.innerHTML = '';
    state.panels = [];
    var byView = {};
    state.data.images.forEach(function (im) { (byView[im.view] = byView[im.view] || []).push(im); });
    FOUR.forEach(function (view) {
      if (!byView[view]) {
        var empty = document.createElement('div');
        empty.className = 'panel';
        empty.dataset.view = view;
        empty.innerHTML = '<div class="label left"></div>';
        empty.firstChild.textContent = view.replace('-', ' ') + ': no image';
        container.appendChild(empty);
        return;
      }
      state.panels.push(new Panel(container, byView[view]));
    });
    applyLayout();
  }

  function applyLayout() {
    var container = $('panels');
    container.className = 'panels ' + (state.layout === 'four' ? 'four' : 'single');
    Array.prototype.forEach.call(container.children, function (el) {
      el.classList.toggle('hidden', state.layout !== 'four' && el.dataset.view !== state.single);
    });
    state.panels.forEach(function (p) {
      if (!p.el.classList.contains('hidden')) { p.resize(); p.fit(); p.ensureLevel(); }
    });
  }

  function setLayout(layout, view) {
    state.layout = layout;
    if (view) { state.single = view; }
    applyLayout();
  }

  function setTool(tool) {
    state.tool = tool;
    document.querySelectorAll('.tool').forEach(function (b) { b.classList.toggle('active', b.dataset.tool === tool); });
    state.panels.forEach(function (p) {
      p.el.className = 'panel tool-' + tool + (p.el.classList.contains('hidden') ? ' hidden' : '');
    });
  }

  function setOverlay(on) {
    state.overlay = !!on;
    $('overlay-toggle').checked = state.overlay;
    if (state.overlay) { state.overlayShown = true; }
    state.panels.forEach(function (p) { if (state.overlay) { p.loadOverlay(); } else { p.draw(); } });
  }

  function resetView() {
    state.wl = { shift: 0, factor: 1 };
    state.panels.forEach(function (p) { p.rendered = {}; p.fit(); p.ensureLevel(); });
  }

  // ------------------------------------------------------------------------------------------
  // Lesion marks
  // ------------------------------------------------------------------------------------------
  function addMark(panel, p) {
    if (!state.data.lesion_marks) { return; }
    var xy = panel.toImage(p[0], p[1]);
    var im = panel.image();
    if (xy[0] < 0 || xy[1] < 0 || xy[0] >= im.width || xy[1] >= im.height) { return; }
    if (state.marks.length >= 20) { status('At most 20 marks per case.', true); return; }
    state.marks.push({ image: im.id, view: im.view, x: Math.round(xy[0] * 10) / 10, y: Math.round(xy[1] * 10) / 10,
                       rating: null });
    renderMarks();
    redrawAll();
  }

  function renderMarks() {
    ['left', 'right'].forEach(function (side) { $(side + '-marks').innerHTML = ''; });
    state.marks.forEach(function (mark, k) {
      var side = mark.view[0] === 'L' ? 'left' : 'right';
      var li = document.createElement('li');
      li.className = 'mark';
      var text = document.createElement('span');
      text.textContent = 'Mark ' + (k + 1) + ' (' + mark.view.replace('-', ' ') + ') confidence';
      var input = document.createElement('input');
      input.type = 'number'; input.min = 0; input.max = 100; input.step = 1; input.required = true;
      input.className = 'mark-rating';
      input.value = mark.rating === null ? '' : mark.rating;
      input.addEventListener('input', function () { mark.rating = input.value === '' ? null : Number(input.value); });
      var remove = document.createElement('button');
      remove.type = 'button'; remove.textContent = 'remove';
      remove.addEventListener('click', function () { state.marks.splice(k, 1); renderMarks(); redrawAll(); });
      li.appendChild(text); li.appendChild(input); li.appendChild(remove);
      $(side + '-marks').appendChild(li);
    });
  }

  // ------------------------------------------------------------------------------------------
  // The case and the answer
  // ------------------------------------------------------------------------------------------
  function status(text, error) {
    $('status').textContent = text;
    $('status').style.color = error ? '#b91c1c' : '';
  }

  function checkReady() {
    var ready = state.panels.every(function (p) { return Object.keys(p.levels).length > 0; });
    if (ready) { document.body.dataset.ready = String(state.data.position) + ':' + state.data.phase; }
  }

  function fillForm(answer) {
    ['left', 'right'].forEach(function (side) {
      var value = answer ? answer[side] : null;
      $(side + '-score').value = value ? value.score : '';
      $(side + '-range').value = value ? value.score : 50;
      $(side + '-birads').value = value ? value.birads : '';
    });
    state.marks = answer ? answer.marks.map(function (m) {
      return { image: m.image, view: m.view, x: m.x, y: m.y, rating: m.rating };
    }) : [];
    renderMarks();
  }

  function showCase(data) {
    if (!state.data) { state.layout = data.layout === 'single' ? 'single' : 'four'; }
    var sameCase = state.data && state.data.position === data.position;
    var phaseChanged = sameCase && state.data.phase !== data.phase;
    state.data = data;
    state.position = data.position;
    delete document.body.dataset.ready;
    $('case-title').textContent = 'Case ' + data.position + ' of ' + data.n_cases;
    $('case-training').hidden = !data.training;
    var aided = data.phase === 'aided';
    $('phase-note').textContent = data.design === 'sequential'
      ? (aided ? 'Step 2: the AI is shown. Revise your assessment if you wish (your first answer is kept).'
               : 'Step 1: your assessment without the AI.')
      : (aided ? 'Reading with the AI.' : 'Reading without the AI.');
    $('ai-box').hidden = !data.ai;
    if (data.ai) {
      $('ai-model').textContent = data.ai.model;
      $('ai-left').textContent = data.ai.left.toFixed(1);
      $('ai-right').textContent = data.ai.right.toFixed(1);
    }
    var hasOverlay = data.images.some(function (im) { return im.overlay; });
    $('overlay-label').hidden = !hasOverlay;
    $('tool-mark').hidden = !data.lesion_marks;
    if (!hasOverlay) { state.overlay = false; }
    $('overlay-toggle').checked = state.overlay;
    fillForm(data.answer || (aided ? data.unaided_answer : null));
    $('prev').disabled = data.position <= 1;
    $('finish-box').hidden = data.current <= data.n_cases;
    $('answer-error').textContent = '';
    if (!sameCase || phaseChanged || state.panels.length === 0) {
      if (!sameCase) {
        state.activeMs = 0;
        state.activeSince = activeNow() ? performance.now() : null;
        state.overlayShown = state.overlay; // an overlay left switched on is shown on the new case too
      }
      buildPanels();
      setTool(state.tool);
    }
    if (window.history && window.history.replaceState) {
      window.history.replaceState(null, '', '/read/' + config.session + '?case=' + data.position);
    }
    checkReady();
  }

  function loadCase(position) {
    state.busy = true;
    return api('/cases/' + position).then(json).then(function (data) {
      state.busy = false;
      if (state.data && state.data.position !== position) { state.panels = []; }
      showCase(data);
    }).catch(function (error) { state.busy = false; status(error.message, true); });
  }

  function readForm() {
    var answer = { phase: state.data.phase, marks: [], elapsed_ms: 0, overlay_shown: state.overlayShown };
    var problems = [];
    ['left', 'right'].forEach(function (side) {
      var raw = $(side + '-score').value;
      var score = Number(raw);
      if (raw === '' || !Number.isInteger(score) || score < 0 || score > 100) {
        problems.push((side === 'left' ? 'Left' : 'Right') +
                      ' breast: give a probability of malignancy from 0 to 100.');
      }
      var birads = $(side + '-birads').value;
      if (!birads) { problems.push((side === 'left' ? 'Left' : 'Right') + ' breast: choose a BI-RADS category.'); }
      answer[side] = { score: score, birads: birads };
    });
    state.marks.forEach(function (mark, k) {
      if (mark.rating === null || !Number.isInteger(mark.rating) || mark.rating < 0 || mark.rating > 100) {
        problems.push('Mark ' + (k + 1) + ': give a confidence from 0 to 100.');
      }
      answer.marks.push({ image: mark.image, x: mark.x, y: mark.y, rating: mark.rating });
    });
    return { answer: answer, problems: problems };
  }

  function save() {
    if (state.busy || !state.data) { return; }
    var form = readForm();
    if (form.problems.length) { $('answer-error').textContent = form.problems.join(' '); return; }
    form.answer.elapsed_ms = elapsed();
    state.busy = true;
    $('save').disabled = true;
    api('/cases/' + state.data.position + '/answer', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(form.answer)
    }).then(json).then(function (data) {
      state.busy = false;
      $('save').disabled = false;
      state.activeMs = 0;
      status('Saved case ' + data.position + ' at ' + new Date().toLocaleTimeString() + '.');
      if (data.phase !== form.answer.phase) { showCase(data); return; } // sequential: the AI is revealed now
      if (data.position < data.n_cases) { state.panels = []; return loadCase(data.position + 1); }
      showCase(data);
    }).catch(function (error) {
      state.busy = false;
      $('save').disabled = false;
      $('answer-error').textContent = 'Not saved: ' + error.message;
    });
  }

  function previous() {
    if (state.busy || !state.data || state.data.position <= 1) { return; }
    state.panels = [];
    loadCase(state.data.position - 1);
  }

  function finish() {
    api('/complete', { method: 'POST' }).then(json).then(function () { window.location = '/'; })
      .catch(function (error) { $('answer-error').textContent = error.message; });
  }

  // ------------------------------------------------------------------------------------------
  // Wiring
  // ------------------------------------------------------------------------------------------
  $('answer-form').addEventListener('submit', function (event) { event.preventDefault(); save(); });
  $('prev').addEventListener('click', previous);
  $('finish').addEventListener('click', finish);
  $('reset-view').addEventListener('click', resetView);
  $('layout-four').addEventListener('click', function () { setLayout('four'); });
  document.querySelectorAll('[data-single]').forEach(function (b) {
    b.addEventListener('click', function () { setLayout('single', b.dataset.single); });
  });
  document.querySelectorAll('.tool').forEach(function (b) {
    b.addEventListener('click', function () { setTool(b.dataset.tool); });
  });
  $('overlay-toggle').addEventListener('change', function () { setOverlay($('overlay-toggle').checked); });
  ['left', 'right'].forEach(function (side) {
    $(side + '-range').addEventListener('input', function () { $(side + '-score').value = $(side + '-range').value; });
    $(side + '-score').addEventListener('input', function () { $(side + '-range').value = $(side + '-score').value; });
  });
  document.addEventListener('keydown', function (event) {
    var target = event.target;
    var typing = /^(SELECT|TEXTAREA)$/.test(target.tagName) ||
      (target.tagName === 'INPUT' && /^(text|number|password|search|email|)$/.test(target.type || ''));
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) { event.preventDefault(); save(); return; }
    if (typing || event.altKey || event.ctrlKey || event.metaKey) { return; }
    var key = event.key.toLowerCase();
    if (key === 'n' || key === 'arrowright') { event.preventDefault(); save(); }
    else if (key === 'p' || key === 'arrowleft') { event.preventDefault(); previous(); }
    else if (key === '0') { setLayout('four'); }
    else if (key >= '1' && key <= '4') { setLayout('single', FOUR[Number(key) - 1]); }
    else if (key === 'o' && !$('overlay-label').hidden) { setOverlay(!state.overlay); }
    else if (key === 'r') { resetView(); }
    else if (key === 'm') { setTool(state.tool === 'magnify' ? 'pan' : 'magnify'); }
  });
  window.addEventListener('resize', function () { applyLayout(); });

  var requested = Number(new URLSearchParams(window.location.search).get('case'));
  var start = requested >= 1 && requested <= config.position ? requested : config.position;
  tick();
  loadCase(start);
}());
