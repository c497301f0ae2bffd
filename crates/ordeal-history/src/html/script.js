// history.html's script: zoom and pan of each timeline, with labels placed again for the
// view by the rules of timeline.rs (same constants), then the page's self-checks, written as
// attributes of the page's body for the browser tests: data-labels (texts drawn),
// data-label-overlaps, data-violation (in-view, out-of-view, none), data-js="ok" once all ran.
(function () {
  'use strict';
  var NS = 'http://www.w3.org/2000/svg';
  var GAP = 6, BUCKETS = 60, MIN_SPAN = 1000;
  var ctx = document.createElement('canvas').getContext('2d');

  // A text's width in this browser's font, measured once.
  function width(t) {
    if (t._w === undefined) {
      var cs = getComputedStyle(t);
      ctx.font = cs.fontStyle + ' ' + cs.fontWeight + ' ' + cs.fontSize + ' ' + cs.fontFamily;
      t._w = ctx.measureText(t.textContent).width;
    }
    return t._w;
  }
  function el(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    parent.appendChild(e);
    return e;
  }
  function fits(taken, x, w) {
    for (var i = 0; i < taken.length; i++) {
      if (!(x + w + GAP <= taken[i][0] || x >= taken[i][1] + GAP)) return false;
    }
    return true;
  }
  function tickStep(span, n) {
    var raw = Math.max(span / n, 1), p = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }
  function tickText(t, step) {
    var u = step >= 1e8 ? [1e9, 's'] : step >= 1e5 ? [1e6, 'ms'] : step >= 1e2 ? [1e3, 'µs'] : [1, 'ns'];
    var decimals = Math.max(0, -Math.floor(Math.log10(step / u[0])));
    return (t / u[0]).toFixed(decimals) + ' ' + u[1];
  }
  function fmt(ns) {
    return ns < 1e3 ? ns.toFixed(0) + ' ns' : ns < 1e6 ? (ns / 1e3).toFixed(1) + ' µs'
      : ns < 1e9 ? (ns / 1e6).toFixed(3) + ' ms' : (ns / 1e9).toFixed(3) + ' s';
  }

  function Timeline(root) {
    var svg = root.querySelector('svg'), d = svg.dataset;
    var left = +d.left, plot = +d.plot, right = left + plot, t0 = +d.t0, span = +d.span;
    var rowsTop = +d.rowsTop, rowH = +d.rowH, rows = +d.rows, axisTop = +d.axisTop;
    var availTop = +d.availTop, availH = +d.availH, height = +svg.getAttribute('height');
    var v0 = 0, v1 = span, pending = false;
    var texts = svg.querySelectorAll('.olabels text');
    var ops = [].map.call(svg.querySelectorAll('g.op'), function (g, i) {
      var r = g.querySelector('rect');
      return {
        r: r, t: texts[i], a: +g.dataset.a, b: +g.dataset.b,
        lane: +g.dataset.lane, o: g.dataset.o, flagged: g.classList.contains('flagged'),
        first: g.dataset.first === '1',
        x: +r.getAttribute('x'), extra: g.querySelectorAll('.mark')
      };
    });
    var lanes = [];
    ops.forEach(function (o) { (lanes[o.lane] = lanes[o.lane] || []).push(o); });
    lanes.forEach(function (l) {
      l.sort(function (p, q) { return (q.flagged - p.flagged) || (q.first - p.first) || (p.a - q.a); });
    });
    var bands = [].map.call(svg.querySelectorAll('.bands rect'), function (r) {
      return { r: r, a: +r.dataset.a, b: +r.dataset.b, instant: r.getAttribute('class') === 'instant' };
    });
    var labels = [].map.call(svg.querySelectorAll('g.bl'), function (g) {
      return { g: g, r: g.querySelector('rect'), t: g.querySelector('text'), a: +g.dataset.a,
               b: +g.dataset.b };
    });
    var vline = svg.querySelector('.bands .vline');
    var axis = svg.querySelector('g.axis'), avail = svg.querySelector('g.avail');
    var range = root.querySelector('.range');
    function X(t) { return left + (t - v0) / (v1 - v0) * plot; }
    function show(e, on) { if (on) e.removeAttribute('display'); else e.setAttribute('display', 'none'); }

    function drawAxis() {
      while (axis.firstChild) axis.removeChild(axis.firstChild);
      var y = axisTop + 18;
      el('line', { x1: left, x2: right, y1: y, y2: y }, axis);
      var step = tickStep(v1 - v0, 8), lastEnd = -Infinity;
      for (var k = Math.ceil((t0 + v0) / step); k * step <= t0 + v1; k++) {
        var tx = X(k * step - t0), text = tickText(k * step, step);
        el('line', { x1: tx, x2: tx, y1: axisTop + 2, y2: height }, axis);
        var t = el('text', { x: tx + 2, y: axisTop + 13 }, axis);
        t.textContent = text;
        var w = width(t);
        if (tx + 2 >= lastEnd + GAP && tx + 2 + w <= right) lastEnd = tx + 2 + w;
        else axis.removeChild(t);
      }
    }

    function drawAvail() {
      if (!avail) return;
      while (avail.firstChild) avail.removeChild(avail.firstChild);
      var base = availTop + availH, bw = plot / BUCKETS, counts = [], max = 1;
      el('line', { 'class': 'base', x1: left, x2: right, y1: base, y2: base }, avail);
      for (var i = 0; i < BUCKETS; i++) counts.push([0, 0, 0]);
      ops.forEach(function (o) {
        if (o.a < v0 || o.a > v1) return;
        var i = Math.min(BUCKETS - 1, Math.floor((o.a - v0) / (v1 - v0) * BUCKETS));
        counts[i][o.o === 'ok' ? 0 : o.o === 'fail' ? 1 : 2]++;
      });
      counts.forEach(function (c) { max = Math.max(max, c[0] + c[1] + c[2]); });
      counts.forEach(function (c, i) {
        var total = c[0] + c[1] + c[2];
        if (!total) return;
        var g = el('g', {}, avail), y = base;
        var from = t0 + v0 + (v1 - v0) * i / BUCKETS, to = t0 + v0 + (v1 - v0) * (i + 1) / BUCKETS;
        el('title', {}, g).textContent = 'invoked ' + fmt(from) + ' … ' + fmt(to) + ': ' + c[0] +
          ' ok, ' + c[1] + ' fail, ' + c[2] + ' info (' + Math.round(100 * c[0] / total) + '% ok)';
        ['ok', 'fail', 'info'].forEach(function (cls, s) {
          var h = c[s] / max * availH;
          if (h <= 0) return;
          y -= h;
          el('rect', { 'class': cls, x: (left + i * bw + 0.5).toFixed(1), y: y.toFixed(1),
                       width: (bw - 1).toFixed(1), height: h.toFixed(1) }, g);
        });
      });
    }

    function draw() {
      pending = false;
      ops.forEach(function (o) {
        var x0 = X(o.a), x1 = Math.max(X(o.b), x0 + (o.flagged ? 10 : 2));
        o.x0 = x0; o.x1 = x1;
        o.r.setAttribute('x', x0.toFixed(1));
        o.r.setAttribute('width', (x1 - x0).toFixed(1));
        for (var i = 0; i < o.extra.length; i++) {
          o.extra[i].setAttribute('transform', 'translate(' + (x0 - o.x).toFixed(1) + ' 0)');
        }
      });
      lanes.forEach(function (lane) {
        var taken = [];
        lane.forEach(function (o) {
          var w = width(o.t), lx = Math.max(o.x0, left) + 3;
          if (o.flagged) lx = Math.min(lx, right - w);
          var ok = o.x1 >= left && o.x0 <= right && lx >= left && lx + w <= right && fits(taken, lx, w);
          if (ok) {
            taken.push([lx, lx + w]);
            o.t.setAttribute('x', lx.toFixed(1));
          }
          show(o.t, ok);
        });
      });
      bands.forEach(function (b) {
        var x0 = X(b.a), x1 = b.instant ? x0 + 2 : Math.max(X(b.b), x0 + 2);
        b.r.setAttribute('x', x0.toFixed(1));
        b.r.setAttribute('width', (x1 - x0).toFixed(1));
      });
      if (vline) {
        var vx = X(+vline.dataset.a).toFixed(1);
        vline.setAttribute('x1', vx);
        vline.setAttribute('x2', vx);
      }
      var taken = [];
      labels.forEach(function (l) {
        var w = width(l.t), lx = Math.max(left, Math.min(X(l.a) + 3, right - w)), row = -1;
        if (X(l.b) >= left && X(l.a) <= right) {
          for (var r = 0; r < rows && row < 0; r++) {
            taken[r] = taken[r] || [];
            if (fits(taken[r], lx, w)) row = r;
          }
        }
        if (row >= 0) {
          taken[row].push([lx, lx + w]);
          var y = rowsTop + row * rowH + 12;
          l.t.setAttribute('x', lx.toFixed(1));
          l.t.setAttribute('y', y);
          l.r.setAttribute('x', (lx - 2).toFixed(1));
          l.r.setAttribute('y', y - 11);
          l.r.setAttribute('width', (w + 4).toFixed(1));
        }
        show(l.g, row >= 0);
      });
      drawAxis();
      drawAvail();
      if (range) range.textContent = fmt(t0 + v0) + ' … ' + fmt(t0 + v1);
    }
    function later() {
      if (!pending) { pending = true; requestAnimationFrame(draw); }
    }
    function setView(a, b) {
      var s = Math.min(span, Math.max(MIN_SPAN, b - a));
      a = Math.max(0, Math.min(a, span - s));
      v0 = a; v1 = a + s;
      later();
    }
    // The plot x of a pointer event, in the SVG's own units.
    function plotX(e) {
      var r = svg.getBoundingClientRect();
      return (e.clientX - r.left) * (+svg.getAttribute('width') / r.width);
    }
    function zoomAt(px, factor) {
      var f = Math.min(1, Math.max(0, (px - left) / plot)), at = v0 + f * (v1 - v0);
      var s = (v1 - v0) * factor;
      setView(at - f * s, at - f * s + s);
    }
    root.querySelectorAll('button[data-zoom]').forEach(function (b) {
      b.addEventListener('click', function () {
        var z = b.dataset.zoom;
        if (z === 'reset') setView(0, span);
        else zoomAt(left + plot / 2, z === 'in' ? 0.5 : 2);
      });
    });
    svg.addEventListener('wheel', function (e) {
      if (e.ctrlKey || e.metaKey) {
        e.preventDefault();
        zoomAt(plotX(e), e.deltaY < 0 ? 0.8 : 1.25);
      } else if (Math.abs(e.deltaX) > Math.abs(e.deltaY) && v1 - v0 < span) {
        e.preventDefault();
        var dt = e.deltaX / plot * (v1 - v0);
        setView(v0 + dt, v1 + dt);
      }
    }, { passive: false });
    svg.addEventListener('dblclick', function (e) { zoomAt(plotX(e), e.shiftKey ? 2 : 0.5); });
    var drag = null;
    svg.addEventListener('pointerdown', function (e) {
      if (e.button !== 0) return;
      drag = { x: plotX(e), v0: v0, v1: v1 };
      svg.setPointerCapture(e.pointerId);
    });
    svg.addEventListener('pointermove', function (e) {
      if (!drag) return;
      var dt = (drag.x - plotX(e)) / plot * (drag.v1 - drag.v0);
      setView(drag.v0 + dt, drag.v1 + dt);
    });
    svg.addEventListener('pointerup', function () { drag = null; });
    svg.addEventListener('pointercancel', function () { drag = null; });
    draw();
    // `#zoom=F` in the address: each timeline opens zoomed in F times around its middle (the
    // browser tests check the placement of a zoomed view this way).
    var z = /[#&]zoom=([0-9.]+)/.exec(location.hash);
    if (z && +z[1] > 1) {
      var s = span / +z[1];
      v0 = (span - s) / 2; v1 = v0 + s;
      draw();
    }
  }

  [].forEach.call(document.querySelectorAll('.tl'), Timeline);

  // Self-checks: overlapping text boxes in the timelines, the violation on the first screen.
  var boxes = [];
  [].forEach.call(document.querySelectorAll('.tl svg text'), function (t) {
    var r = t.getBoundingClientRect();
    if (r.width > 0 && r.height > 0) boxes.push({ r: r, t: t.textContent });
  });
  boxes.sort(function (p, q) { return p.r.left - q.r.left; });
  var overlaps = 0, examples = [];
  for (var i = 0; i < boxes.length; i++) {
    for (var j = i + 1; j < boxes.length && boxes[j].r.left < boxes[i].r.right - 0.5; j++) {
      var a = boxes[i].r, b = boxes[j].r;
      if (Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 0.5) {
        overlaps++;
        if (examples.length < 5) examples.push(boxes[i].t + ' / ' + boxes[j].t);
      }
    }
  }
  document.body.setAttribute('data-labels', boxes.length);
  document.body.setAttribute('data-label-overlaps', overlaps);
  if (examples.length) document.body.setAttribute('data-overlap-examples', examples.join(' | '));
  var v = document.getElementById('violation'), where = 'none';
  if (v) {
    v.scrollIntoView({ block: 'center', inline: 'center' });
    var r = v.querySelector('rect').getBoundingClientRect();
    where = r.width >= 8 && r.left >= 0 && r.top >= 0 && r.right <= innerWidth &&
      r.bottom <= innerHeight ? 'in-view' : 'out-of-view';
  }
  document.body.setAttribute('data-violation', where);
  document.body.setAttribute('data-js', 'ok');
})();
