/* lien report: draws the charts (Chart.js) and the help network (Cytoscape.js) from the embedded JSON. */
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("lien-data").textContent);
  var state = { charts: [], graphs: [], ready: false };
  window.lienReport = state;

  var COLOR = {
    ink: "#1e293b", muted: "#64748b", grid: "#e2e8f0", blue: "#2563eb", teal: "#0d9488", orange: "#ea580c",
    purple: "#7c3aed", slate: "#94a3b8", green: "#16a34a", red: "#dc2626", amber: "#d97706"
  };
  // Time-to-first-answer buckets, fast (green) to slow (red); the last one is "no answer".
  var BUCKET_COLORS = ["#15803d", "#4d9f3a", "#a3b635", "#e5b62c", "#f08a2c", "#e0522e", "#b91c1c", "#cbd5e1"];

  // Readable marks for the log-scale latency axis, in hours.
  var LATENCY_TICKS = [[1 / 60, "1 min"], [5 / 60, "5 min"], [15 / 60, "15 min"], [1, "1 h"], [4, "4 h"],
    [24, "1 day"], [72, "3 days"], [168, "1 week"], [720, "30 days"]];

  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.color = COLOR.ink;
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.font.size = 12;
  Chart.defaults.plugins.legend.labels.boxWidth = 12;
  Chart.defaults.plugins.legend.labels.boxHeight = 12;
  Chart.defaults.plugins.tooltip.mode = "index";
  Chart.defaults.plugins.tooltip.intersect = false;

  function pctAxis(title, position) {
    return {
      type: "linear", position: position || "left", min: 0, max: 100, title: { display: true, text: title },
      ticks: { callback: function (v) { return v + "%"; } }, grid: { color: COLOR.grid }
    };
  }

  function countAxis(title, position, grid) {
    return {
      type: "linear", position: position || "left", beginAtZero: true, title: { display: true, text: title },
      ticks: { precision: 0 }, grid: grid === false ? { drawOnChartArea: false } : { color: COLOR.grid }
    };
  }

  function series(label, data, color, axis, extra) {
    var ds = {
      type: "line", label: label, data: data, borderColor: color, backgroundColor: color, yAxisID: axis,
      borderWidth: 2, pointRadius: data.length > 40 ? 0 : 2.5, spanGaps: true, cubicInterpolationMode: "monotone"
    };
    for (var k in extra || {}) { ds[k] = extra[k]; }
    return ds;
  }

  function bars(label, data, color, axis) {
    return { type: "bar", label: label, data: data, backgroundColor: color, yAxisID: axis, borderRadius: 3, order: 10 };
  }

  function chart(id, config) {
    var canvas = document.getElementById(id);
    if (!canvas) { return null; }
    var c = new Chart(canvas, config);
    state.charts.push(c);
    return c;
  }

  function xAxis() {
    return { grid: { display: false }, ticks: { maxRotation: 0, autoSkip: true, autoSkipPadding: 12 } };
  }

  function trendCharts(key, w) {
    var labels = w.labels;
    chart(key + "-questions", {
      data: { labels: labels, datasets: [
        bars("questions", w.questions, "rgba(37, 99, 235, 0.22)", "n"),
        series("answered %", w.answer_rate, COLOR.blue, "pct"),
        series("resolved %", w.resolved_share, COLOR.teal, "pct")
      ] },
      options: { scales: { x: xAxis(), pct: pctAxis("share of questions"), n: countAxis("questions", "right", false) } }
    });
    chart(key + "-latency", {
      data: { labels: labels, datasets: [
        series("median", w.median_h, COLOR.blue, "h"),
        series("p90 (slowest tenth)", w.p90_h, COLOR.orange, "h", { borderDash: [6, 4] })
      ] },
      options: {
        scales: {
          x: xAxis(),
          h: { type: "logarithmic", title: { display: true, text: "time to first answer (log scale)" },
               grid: { color: COLOR.grid },
               afterBuildTicks: function (axis) {
                 axis.ticks = LATENCY_TICKS.filter(function (t) { return t[0] >= axis.min && t[0] <= axis.max; })
                   .map(function (t) { return { value: t[0], label: t[1] }; });
               },
               ticks: { autoSkip: false, callback: function (v) {
                 var hit = LATENCY_TICKS.filter(function (t) { return t[0] === v; })[0];
                 return hit ? hit[1] : "";
               } } }
        },
        plugins: { tooltip: { callbacks: { label: function (ctx) {
          var v = ctx.parsed.y;
          return ctx.dataset.label + ": " + (v < 1 ? Math.round(v * 60) + " min" : v < 48 ? v.toFixed(1) + " h" :
          (v / 24).toFixed(1) + " days");
        } } } }
      }
    });
    chart(key + "-reciprocity", {
      data: { labels: labels, datasets: [
        series("reciprocated pairs %", w.reciprocity, COLOR.orange, "pct"),
        series("asked and helped %", w.both_share, COLOR.teal, "pct"),
        series("help-graph density %", w.density, COLOR.purple, "d", { borderDash: [4, 4] })
      ] },
      options: { scales: {
        x: xAxis(), pct: pctAxis("share"),
        d: { type: "linear", position: "right", beginAtZero: true, title: { display: true, text: "density" },
             ticks: { callback: function (v) { return v + "%"; } }, grid: { drawOnChartArea: false } }
      } }
    });
    chart(key + "-load", {
      data: { labels: labels, datasets: [
        series("answers by the top 10% %", w.top_share, COLOR.red, "pct"),
        series("newcomers answered %", w.newcomers_answered_share, COLOR.green, "pct"),
        bars("answerers giving half the answers", w.half_helpers, "rgba(124, 58, 237, 0.25)", "k")
      ] },
      options: { scales: { x: xAxis(), pct: pctAxis("share"), k: countAxis("people", "right", false) } }
    });
    chart(key + "-members", {
      data: { labels: labels, datasets: [bars("active members", w.members, "rgba(100, 116, 139, 0.45)", "m")] },
      options: { scales: { x: xAxis(), m: countAxis("members") }, plugins: { legend: { display: false } } }
    });
  }

  function roomChart(key, r) {
    var holder = document.getElementById(key + "-rooms-box");
    if (!holder || !r.labels.length) { return; }
    holder.style.height = (70 + 34 * r.labels.length) + "px";
    var datasets = r.buckets.map(function (name, i) {
      return {
        label: name, backgroundColor: BUCKET_COLORS[i % BUCKET_COLORS.length], borderWidth: 0,
        data: r.shares.map(function (row) { return row[i]; }), counts: r.counts.map(function (row) { return row[i]; })
      };
    });
    chart(key + "-rooms", {
      type: "bar",
      data: { labels: r.labels, datasets: datasets },
      options: {
        indexAxis: "y",
        scales: {
          x: { stacked: true, min: 0, max: 100, ticks: { callback: function (v) { return v + "%"; } },
               grid: { color: COLOR.grid } },
          y: { stacked: true, grid: { display: false } }
        },
        plugins: {
          legend: { position: "top" },
          tooltip: { mode: "nearest", intersect: true, callbacks: { label: function (ctx) {
            return ctx.dataset.label + ": " + ctx.dataset.counts[ctx.dataIndex] + " questions (" +
              ctx.parsed.x.toFixed(0) + "%)";
          } } }
        }
      }
    });
  }

  function helpGraph(key, g) {
    var box = document.getElementById(key + "-graph");
    if (!box || !g.nodes.length) { return; }
    var n = g.nodes.length;
    var elements = g.nodes.map(function (d, i) {
      // A deterministic starting circle, so the same data gives the same drawing.
      var a = 2 * Math.PI * i / n, rad = 40 + 6 * n;
      return { group: "nodes", data: d, position: { x: rad * Math.cos(a), y: rad * Math.sin(a) } };
    }).concat(g.edges.map(function (e, i) {
      return { group: "edges", data: { id: "e" + i, source: e.s, target: e.t, w: e.w, r: e.r ? 1 : 0 } };
    }));
    var cy = cytoscape({
      container: box, elements: elements, wheelSensitivity: 0.3, boxSelectionEnabled: false,
      minZoom: 0.1, maxZoom: 4,
      style: [
        { selector: "node", style: {
          "background-color": COLOR.slate, width: "mapData(given, 0, " + Math.max(g.maxGiven, 1) + ", 12, 46)",
          height: "mapData(given, 0, " + Math.max(g.maxGiven, 1) + ", 12, 46)",
          label: "data(label)", "font-size": 14, "font-weight": 600, color: COLOR.ink, "min-zoomed-font-size": 5, "text-valign": "bottom", "text-margin-y": 3,
          "text-outline-color": "#fbfcfe", "text-outline-width": 3, "border-width": 1, "border-color": "#ffffff"
        } },
        { selector: "node[role = 'helper']", style: { "background-color": COLOR.blue } },
        { selector: "node[role = 'both']", style: { "background-color": COLOR.teal } },
        { selector: "edge", style: {
          width: "mapData(w, 1, " + Math.max(g.maxW, 2) + ", 1, 7)", "line-color": "#9fb0c7",
          "target-arrow-color": "#9fb0c7", "target-arrow-shape": "triangle", "arrow-scale": 0.9,
          "curve-style": "bezier", opacity: 0.55
        } },
        { selector: "edge[r = 1]", style: {
          "line-color": COLOR.orange, "target-arrow-color": COLOR.orange, opacity: 0.95, "z-index": 10
        } },
        { selector: "node:selected", style: { "border-width": 3, "border-color": COLOR.orange } },
        { selector: ".faded", style: { opacity: 0.12 } }
      ],
      layout: { name: "preset" }
    });
    // Dense networks need longer springs and more repulsion; big sparse ones more gravity to stay compact.
    var degree = 2 * g.edges.length / n;
    cy.layout({
      name: "cose", animate: false, randomize: false, fit: true, padding: 24, nodeDimensionsIncludeLabels: n < 60,
      idealEdgeLength: function () { return 40 + 6 * Math.min(degree, 20); },
      nodeRepulsion: function () { return 5000 * (1 + Math.min(degree, 20) / 2); },
      edgeElasticity: function () { return 100; }, gravity: n > 80 ? 5 : 1, componentSpacing: 20, nodeOverlap: 10,
      numIter: 2500
    }).run();
    // A small network would be blown up to fill the box: keep it at natural size instead.
    if (cy.zoom() > 1) { cy.zoom(1); cy.center(); }
    var info = document.getElementById(key + "-graph-info");
    cy.on("tap", "node", function (evt) {
      var d = evt.target.data();
      cy.elements().addClass("faded");
      evt.target.closedNeighborhood().removeClass("faded");
      info.textContent = d.name + ": gave " + d.given + " answers or credits to " + d.helped +
        " people; received help from " + d.helpers + " people; asked " + d.asked + " questions.";
    });
    cy.on("tap", function (evt) {
      if (evt.target === cy) { cy.elements().removeClass("faded"); info.textContent = info.dataset.hint || ""; }
    });
    var fit = document.getElementById(key + "-graph-fit");
    if (fit) { fit.addEventListener("click", function () { cy.elements().removeClass("faded"); cy.fit(undefined, 24); }); }
    window.addEventListener("resize", function () { cy.resize(); });
    state.graphs.push(cy);
  }

  DATA.communities.forEach(function (c) {
    if (c.weeks.labels.length) { trendCharts(c.key, c.weeks); }
    roomChart(c.key, c.rooms);
    helpGraph(c.key, c.graph);
  });
  state.ready = true;
  document.documentElement.setAttribute("data-ready", "1");
})();
