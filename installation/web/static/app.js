// The operator's page. No framework, no outside files: it must load on a phone on a gallery
// network with no internet. Every text from the show is set with textContent, never as HTML:
// visitors' words are shown here.
"use strict";

(() => {
  const KEY = "jadong.password";
  const PREVIEW_EVERY_MS = 300; // about 3 frames a second: enough to see, cheap to make
  const STREAM_SILENT_MS = 15000; // no event for this long: the stream is dead, reconnect
  const STALE_S = 3; // a status older than this: the display loop is not presenting
  const HEALTH_EVERY_MS = 3000; // how often the page asks /healthz, which says why the show is unwell
  const $ = (id) => document.getElementById(id);

  let password = sessionStorage.getItem(KEY) || "";
  let status = null;
  let running = false; // signed in and showing the live page
  let streamAbort = null;
  let previewUrl = null;
  let cuesShown = "";
  let strengthBusy = false; // the operator is moving the slider: do not move it under their finger
  let lastHealth = { healthy: true, reason: "" };

  // --- talking to the server -------------------------------------------------------------
  function headers(extra) {
    const h = Object.assign({}, extra || {});
    if (password) h.Authorization = "Bearer " + password;
    return h;
  }

  function api(path, options) {
    const opts = Object.assign({ cache: "no-store" }, options || {});
    opts.headers = headers(opts.headers);
    return fetch(path, opts);
  }

  async function reasonOf(response) {
    try {
      const body = await response.json();
      if (body && body.reason) return body.reason;
    } catch (e) { /* not JSON */ }
    return response.status + " " + response.statusText;
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // --- signing in ----------------------------------------------------------------------------
  function showLogin(message) {
    running = false;
    if (streamAbort) streamAbort.abort();
    $("main").hidden = true;
    $("logout").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    setConnection("signed out", false);
    $("password").focus();
  }

  function signOut(message) {
    password = "";
    sessionStorage.removeItem(KEY);
    showLogin(message);
  }

  async function boot() {
    let response;
    try {
      response = await api("/api/status");
    } catch (e) {
      setConnection("offline", false);
      setTimeout(boot, 2000);
      return;
    }
    if (response.ok) {
      enter(await response.json());
    } else if (response.status === 401) {
      showLogin("");
    } else if (response.status === 403) {
      signOut("Wrong password.");
    } else {
      showLogin(await reasonOf(response));
    }
  }

  async function login(event) {
    event.preventDefault();
    const offered = $("password").value;
    if (!offered) return;
    password = offered;
    $("login-button").disabled = true;
    try {
      const response = await api("/api/status");
      if (response.ok) {
        sessionStorage.setItem(KEY, password);
        $("password").value = "";
        enter(await response.json());
      } else if (response.status === 403) {
        password = "";
        $("login-error").textContent = "Wrong password.";
      } else {
        password = "";
        $("login-error").textContent = await reasonOf(response);
      }
    } catch (e) {
      password = "";
      $("login-error").textContent = "The show could not be reached: " + e.message;
    } finally {
      $("login-button").disabled = false;
    }
  }

  function enter(first) {
    $("login").hidden = true;
    $("main").hidden = false;
    $("logout").hidden = !password;
    running = true;
    render(first);
    loadShows();
    loadCaptures();
    stream();
    previewLoop();
    healthLoop();
  }

  // --- live updates: server-sent events read with fetch(), so the password header is sent ----
  function setConnection(text, live) {
    const pill = $("connection");
    pill.textContent = text;
    pill.classList.toggle("live", !!live);
  }

  function handleEvent(block) {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) name = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    if (!data.length) return;
    const payload = JSON.parse(data.join("\n"));
    if (name === "status") render(payload);
    else if (name === "heartbeat") showHealth(payload);
  }

  async function stream() {
    let backoff = 500;
    while (running) {
      const abort = new AbortController();
      streamAbort = abort;
      let watchdog = null;
      const arm = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => abort.abort(), STREAM_SILENT_MS);
      };
      try {
        arm();
        const response = await api("/api/events", { headers: { Accept: "text/event-stream" }, signal: abort.signal });
        if (response.status === 401 || response.status === 403) {
          signOut(response.status === 403 ? "Wrong password." : "");
          return;
        }
        if (!response.ok || !response.body) throw new Error(await reasonOf(response));
        setConnection("live", true);
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          arm();
          backoff = 500;
          buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            try { handleEvent(block); } catch (e) { console.error("bad event", e); }
          }
        }
      } catch (e) {
        /* the show restarted, the network dropped, or the watchdog fired: reconnect below */
      }
      clearTimeout(watchdog);
      if (!running) return;
      setConnection("reconnecting…", false);
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 10000);
    }
  }

  // --- the preview: fetched with the password, shown through an object URL --------------------
  async function previewLoop() {
    while (running) {
      if (!document.hidden) {
        try {
          const response = await api("/api/preview.jpg");
          if (response.status === 200) {
            const url = URL.createObjectURL(await response.blob());
            const img = $("preview");
            const old = previewUrl;
            previewUrl = url;
            img.src = url;
            if (old) setTimeout(() => URL.revokeObjectURL(old), 1000);
          } else if (response.status === 401 || response.status === 403) {
            if (response.status === 403) signOut("Wrong password.");
            return;
          }
        } catch (e) { /* offline for a moment: the stream shows it */ }
      }
      await sleep(PREVIEW_EVERY_MS);
    }
  }

  // --- health: what /healthz tells a monitor, shown as a banner. The stream's heartbeats carry it
  // only while the status stands still, which it never does while frames are presented. --------
  async function healthLoop() {
    while (running) {
      try {
        const response = await fetch("/healthz", { cache: "no-store" });
        const reason = (await response.text()).trim();
        if (response.status === 200 || response.status === 503) showHealth({ healthy: response.ok, reason: reason });
      } catch (e) { /* offline for a moment: the stream shows it */ }
      await sleep(HEALTH_EVERY_MS);
    }
  }

  // --- showing the status ---------------------------------------------------------------------
  function text(id, value) {
    const el = $(id);
    const s = value === undefined || value === null || value === "" ? "—" : String(value);
    if (el.textContent !== s) el.textContent = s;
  }

  function duration(seconds) {
    if (seconds === undefined || seconds === null) return "—";
    let s = Math.max(0, Math.round(seconds));
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d) return d + " d " + h + " h";
    if (h) return h + " h " + m + " min";
    if (m) return m + " min " + s + " s";
    return s + " s";
  }

  function pairs(map, unit) {
    if (!map) return "—";
    const keys = Object.keys(map).sort();
    if (!keys.length) return "none";
    return keys.map((k) => k + " " + (unit !== undefined && typeof map[k] === "number" ? map[k].toFixed(1) + unit : map[k]))
      .join(" · ");
  }

  function showHealth(health) {
    lastHealth = health || lastHealth;
    const stale = status && typeof status.age_s === "number" && status.age_s > STALE_S;
    const el = $("health");
    if (!lastHealth.healthy || stale) {
      el.textContent = lastHealth.healthy ? "The display loop is not presenting." : lastHealth.reason;
      el.hidden = false;
    } else {
      el.hidden = true;
    }
  }

  function showError(message) {
    const el = $("error");
    el.textContent = message || "";
    el.hidden = !message;
  }

  function render(s) {
    status = s;
    text("show", s.show);
    const cue = s.cue || {};
    text("cue", cue.number ? cue.number + ". " + cue.name : "before the first cue");
    $("time-left").textContent = typeof cue.time_left_s === "number" ? duration(cue.time_left_s) + " left" : "";
    text("prompt", s.prompt);
    const hasWords = Object.prototype.hasOwnProperty.call(s, "words") && s.words;
    $("words-row").hidden = !hasWords;
    if (hasWords) text("words", s.words.text || s.words.english || "nothing heard yet");
    text("presence", s.presence ? "someone is here" : "nobody");
    $("people").textContent = typeof s.people === "number" ? "(" + s.people + (s.people === 1 ? " person)" : " people)") : "";
    renderCues(s.cues || [], cue.index);
    renderQueue(s.queue || []);
    renderSettings(s);
    text("rates", pairs(s.rates, ""));  // frames per second, one decimal
    text("drops", pairs(s.drops));
    text("generator", s.generator);
    text("model", s.model);
    text("gpu", s.gpu ? (s.gpu.name ? s.gpu.name + ": " : "") + Math.round(s.gpu.memory_used_mb) + " / "
      + Math.round(s.gpu.memory_total_mb) + " MB" : "no GPU");
    text("uptime", duration(s.uptime_s));
    text("restarts", pairs(s.restarts));
    renderErrors(s.errors || []);
    const web = s.web || { controls: true };
    $("controls-off").hidden = !!web.controls;
    $("controls-off").textContent = web.controls ? "" : "Controls are off: " + web.reason;
    for (const el of document.querySelectorAll(".control, #cue-list button, #queue button")) el.disabled = !web.controls;
    showHealth(null);
  }

  function renderCues(cues, index) {
    const key = JSON.stringify(cues) + "|" + index;
    if (key === cuesShown) return;
    cuesShown = key;
    const list = $("cue-list");
    list.textContent = "";
    cues.forEach((c, i) => {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "cue-item" + (i === index ? " current" : "");
      b.dataset.number = String(c.number);
      b.id = "cue-" + c.number;
      if (i === index) b.setAttribute("aria-current", "step");
      b.textContent = c.number + ". " + c.name;
      b.addEventListener("click", () => control("/jadong/cue/go", [c.number]));
      li.appendChild(b);
      list.appendChild(li);
    });
  }

  // Queue items are kept, not rebuilt, so an edit in progress survives the updates.
  function renderQueue(queue) {
    const list = $("queue");
    const seen = new Set();
    for (const w of queue) {
      const id = "queue-item-" + w.id;
      seen.add(id);
      let li = $(id);
      if (!li) {
        li = queueItem(w);
        list.appendChild(li);
      }
      const left = typeof w.left_s === "number" ? "decided by itself in " + Math.ceil(w.left_s) + " s" : "";
      li.querySelector(".left").textContent = "waiting " + Math.round(w.age_s || 0) + " s" + (left ? " · " + left : "");
    }
    for (const li of Array.from(list.children)) if (!seen.has(li.id)) li.remove();
    $("queue-empty").hidden = queue.length > 0;
    $("queue-count").textContent = queue.length ? "(" + queue.length + ")" : "";
  }

  function queueItem(w) {
    const li = document.createElement("li");
    li.id = "queue-item-" + w.id;
    li.dataset.id = String(w.id);
    const said = document.createElement("div");
    said.className = "said";
    said.textContent = w.caption || w.text;
    li.appendChild(said);
    if (w.text && w.text !== w.caption) {
      const english = document.createElement("div");
      english.className = "english";
      english.textContent = "painted as: " + w.text;
      li.appendChild(english);
    }
    const left = document.createElement("div");
    left.className = "left";
    li.appendChild(left);
    const input = document.createElement("input");
    input.type = "text";
    input.className = "edit-text";
    input.id = "queue-edit-" + w.id;
    input.value = w.text;
    input.maxLength = 1000;
    input.hidden = true;
    li.appendChild(input);
    const row = document.createElement("div");
    row.className = "row";
    const approve = button("Approve", "approve", () => control("/jadong/queue/approve", [w.id]));
    const edit = button("Edit", "edit", async () => {
      if (input.hidden) {
        input.hidden = false;
        input.focus();
        edit.textContent = "Paint these words";
        return;
      }
      await control("/jadong/queue/edit", [w.id, input.value]);
    });
    const reject = button("Reject", "reject", () => control("/jadong/queue/reject", [w.id]));
    row.append(approve, edit, reject);
    li.appendChild(row);
    const allowed = !status || !status.web || status.web.controls;
    for (const b of [approve, edit, reject]) b.disabled = !allowed;
    return li;
  }

  function button(label, cls, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = cls;
    b.textContent = label;
    b.addEventListener("click", onClick);
    return b;
  }

  function renderSettings(s) {
    if (typeof s.strength === "number" && !strengthBusy) {
      $("strength").value = String(s.strength);
      $("strength-value").textContent = s.strength.toFixed(2);
    }
    $("listen").setAttribute("aria-pressed", s.listening ? "true" : "false");
    $("listen").textContent = s.listening ? "Listening: on" : "Listening: off";
    $("blackout").setAttribute("aria-pressed", s.blackout ? "true" : "false");
    $("blackout").textContent = s.blackout ? "Blackout: on" : "Blackout: off";
    const select = $("show-select");
    const current = s.show_file || s.show;
    if (current && !select.dataset.touched && select.value !== current) {
      if (Array.from(select.options).some((o) => o.value === current)) select.value = current;
    }
  }

  // With its leading space: the age follows the reason on the same line, at creation and on each refresh.
  const ago = (seconds) => " " + duration(seconds) + " ago";

  function renderErrors(errors) {
    const list = $("errors");
    const key = JSON.stringify(errors.map((e) => [e.stage, e.reason]));
    $("errors-none").hidden = errors.length > 0;
    if (list.dataset.key === key) {
      errors.slice().reverse().forEach((e, i) => {
        const when = list.children[i] && list.children[i].querySelector(".when");
        if (when) when.textContent = ago(e.age_s);
      });
      return;
    }
    list.dataset.key = key;
    list.textContent = "";
    for (const e of errors.slice().reverse()) { // newest first
      const li = document.createElement("li");
      const head = document.createElement("div");
      const stage = document.createElement("strong");
      stage.textContent = e.stage + ": ";
      const reason = document.createElement("span");
      reason.textContent = e.reason;
      const when = document.createElement("span");
      when.className = "when muted";
      when.textContent = ago(e.age_s);
      head.append(stage, reason, when);
      li.appendChild(head);
      if (e.advice) {
        const advice = document.createElement("div");
        advice.className = "advice";
        advice.textContent = "What to do: " + e.advice;
        li.appendChild(advice);
      }
      list.appendChild(li);
    }
  }

  // --- controls ---------------------------------------------------------------------------------
  async function control(address, args) {
    showError("");
    try {
      const response = await api("/api/control", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ address: address, args: args || [] }),
      });
      if (response.ok) return (await response.json()).values;
      const why = await reasonOf(response);
      if (response.status === 401 || (response.status === 403 && why === "wrong password")) {
        signOut("Sign in again: " + why);
        return null;
      }
      showError(why);
    } catch (e) {
      showError("The show could not be reached: " + e.message);
    }
    return null;
  }

  async function loadShows() {
    try {
      const response = await api("/api/shows");
      if (!response.ok) return;
      const names = (await response.json()).shows || [];
      const select = $("show-select");
      select.textContent = "";
      for (const name of names) {
        const option = document.createElement("option");
        option.value = name;
        option.textContent = name;
        select.appendChild(option);
      }
      if (status) renderSettings(status);
    } catch (e) { /* shown again on the next visit */ }
  }

  async function loadCaptures() {
    try {
      const response = await api("/api/captures");
      if (!response.ok) return;
      const list = $("captures");
      list.textContent = "";
      for (const c of ((await response.json()).captures || []).slice(0, 30)) {
        const li = document.createElement("li");
        li.appendChild(button(c.time + "  " + c.name, "capture-item", () => openCapture(c.name)));
        list.appendChild(li);
      }
    } catch (e) { /* tried again after the next capture */ }
  }

  async function openCapture(name) {
    const response = await api("/captures/" + encodeURIComponent(name));
    if (!response.ok) {
      showError(await reasonOf(response));
      return;
    }
    const view = $("capture-view");
    const meta = $("capture-meta");
    if (name.endsWith(".json")) {
      meta.textContent = await response.text();
      meta.hidden = false;
    } else {
      if (view.src.startsWith("blob:")) URL.revokeObjectURL(view.src);
      view.src = URL.createObjectURL(await response.blob());
      view.hidden = false;
    }
  }

  function twoTaps(el, label, action) {
    let armed = null;
    el.addEventListener("click", () => {
      if (!armed) {
        el.textContent = "Tap again to " + label.toLowerCase();
        el.classList.add("confirm");
        armed = setTimeout(() => { armed = null; el.textContent = label; el.classList.remove("confirm"); }, 3000);
        return;
      }
      clearTimeout(armed);
      armed = null;
      el.textContent = label;
      el.classList.remove("confirm");
      action();
    });
  }

  function wire() {
    $("login-form").addEventListener("submit", login);
    $("logout").addEventListener("click", () => signOut(""));
    $("go").addEventListener("click", () => control("/jadong/cue/next"));
    $("prev").addEventListener("click", () => control("/jadong/cue/prev"));
    $("listen").addEventListener("click", () => control("/jadong/listen", [!(status && status.listening)]));
    $("blackout").addEventListener("click", () => control("/jadong/blackout", [!(status && status.blackout)]));
    $("capture").addEventListener("click", async () => {
      if ((await control("/jadong/capture")) !== null) setTimeout(loadCaptures, 300);
    });
    $("refresh-captures").addEventListener("click", loadCaptures);
    $("show-select").addEventListener("change", () => { $("show-select").dataset.touched = "1"; });
    $("switch-show").addEventListener("click", async () => {
      const name = $("show-select").value;
      if (name) await control("/jadong/show", [name]);
      delete $("show-select").dataset.touched;
    });
    twoTaps($("restart"), "Restart the show", () => {
      const name = status && (status.show_file || status.show);
      if (name) control("/jadong/show", [name]);
    });
    const strength = $("strength");
    let sent = 0;
    let pending = null;
    const sendStrength = () => {
      pending = null;
      sent = Date.now();
      control("/jadong/strength", [Number(strength.value)]);
    };
    strength.addEventListener("input", () => {
      strengthBusy = true;
      $("strength-value").textContent = Number(strength.value).toFixed(2);
      if (pending) return;
      pending = setTimeout(sendStrength, Math.max(0, 250 - (Date.now() - sent))); // at most 4 a second
    });
    strength.addEventListener("change", () => {
      if (pending) clearTimeout(pending);
      sendStrength();
      setTimeout(() => { strengthBusy = false; }, 600);
    });
    document.addEventListener("visibilitychange", () => { if (!document.hidden && running) loadCaptures(); });
  }

  wire();
  boot();
})();
