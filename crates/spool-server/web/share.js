// The share page's script (crates/spool-server/src/share.rs renders the
// page). It polls /v/{id}/status.json while the recording is not ready and
// switches the page between its states in place; it plays the HLS playlist
// with hls.js where Media Source Extensions exist, with the browser's own
// HLS where it has that (Safari), else the MP4; and it adds playback speed,
// a download link and keyboard shortcuts to the native controls. No eval,
// no inline script: the page's policy allows neither.
(function () {
  'use strict';
  var body = document.body;
  var id = body.dataset.asset;
  if (!id) return;

  var POLL_MS = 1500;
  var stage = document.getElementById('stage');
  var toolbar = document.getElementById('toolbar');
  var speed = document.getElementById('speed');
  var download = document.getElementById('download');
  var note = document.getElementById('note');
  var heading = document.getElementById('title');
  var meta = document.getElementById('meta');

  var video = null;   // the <video>, once there is one
  var badge = null;   // the "Live" badge
  var hls = null;     // the hls.js instance, when hls.js plays
  var source = null;  // 'hls' | 'native' | 'mp4': how the video is fed
  var gone = false;   // deleted: nothing more to do
  var lastPanel = ''; // what the panel shows, to rebuild it only on change

  // The page loads media from its own origin (the policy's 'self'),
  // whatever host the server's absolute URLs name.
  function local(u) {
    if (!u) return null;
    try { var x = new URL(u, location.href); return x.pathname + x.search; } catch (e) { return null; }
  }

  function clock(ms) {
    var s = Math.floor(ms / 1000), h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
    s = s % 60;
    var mm = h > 0 ? String(m).padStart(2, '0') : String(m);
    return (h > 0 ? h + ':' : '') + mm + ':' + String(s).padStart(2, '0');
  }

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (attrs[k] === true) e.setAttribute(k, '');
      else if (attrs[k] != null && attrs[k] !== false) e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) {
      e.append(typeof c === 'string' ? document.createTextNode(c) : c);
    });
    return e;
  }

  // --- the states that are not a player -----------------------------------

  function showPanel(key, cls, children) {
    destroyPlayer();
    toolbar.hidden = true;
    if (key === lastPanel) return;
    lastPanel = key;
    stage.replaceChildren(el('div', { 'class': 'panel ' + cls, 'data-testid': 'share-state' }, children));
  }

  function spinner() { return el('div', { 'class': 'spinner' }); }

  function panelFor(s) {
    var mb, pct;
    switch (s.status) {
      case 'waiting':
        showPanel('waiting', '', [spinner(),
          el('p', { 'class': 'big' }, ['Waiting for the recording to start']),
          el('p', { 'class': 'sub' }, ['This page updates by itself as soon as it does.'])]);
        break;
      case 'uploading':
        mb = (s.offset / 1e6).toFixed(1);
        showPanel('uploading:' + mb, '', [spinner(),
          el('p', { 'class': 'big' }, ['Recording in progress']),
          el('p', { 'class': 'sub' }, [mb + ' MB received so far; the video appears here as soon as it can be played.'])]);
        break;
      case 'processing':
        pct = Math.round(Math.min(Math.max(s.progress || 0, 0), 1) * 100);
        showPanel('processing:' + pct, '', [
          el('p', { 'class': 'big' }, ['Processing the recording… ', el('span', { 'data-testid': 'share-progress' }, [pct + '%'])]),
          el('progress', { max: '100', value: String(pct) }),
          el('p', { 'class': 'sub' }, ['It plays here as soon as it is ready.'])]);
        break;
      case 'errored':
        showPanel('errored', 'error', [
          el('p', { 'class': 'big' }, ["This recording can't be played"]),
          el('p', { 'class': 'sub', 'data-testid': 'share-error' }, [(s.error && s.error.message) || 'The upload did not complete.']),
          el('p', { 'class': 'code' }, [(s.error && s.error.code) || ''])]);
        break;
    }
  }

  function showDeleted() {
    gone = true;
    destroyPlayer();
    toolbar.remove();
    heading.textContent = 'Recording deleted';
    document.title = 'Recording deleted';
    meta.textContent = '';
    // Nothing of it stays in the page, link previews included.
    document.querySelectorAll('meta[property^="og:"], meta[name^="twitter:"]').forEach(function (m) { m.remove(); });
    stage.replaceChildren(el('div', { 'class': 'panel', 'data-testid': 'share-state' },
      [el('p', { 'class': 'big' }, ['This recording was deleted.'])]));
  }

  // --- the player -------------------------------------------------------------

  function destroyPlayer() {
    if (hls) { hls.destroy(); hls = null; }
    if (video) {
      video.removeAttribute('src');
      video.load();
    }
    video = null; badge = null; source = null;
  }

  function ensurePlayer(s) {
    if (!video) {
      video = document.getElementById('video');
      badge = document.getElementById('live-badge');
      if (!video) {
        video = el('video', { 'data-testid': 'share-video', id: 'video', controls: true, playsinline: true, preload: 'metadata' });
        badge = el('span', { 'class': 'badge', 'data-testid': 'live-badge', id: 'live-badge', hidden: true }, ['Live']);
        stage.replaceChildren(el('div', { 'class': 'player', id: 'player' }, [video, badge]));
      }
      lastPanel = '';
      video.playbackRate = video.defaultPlaybackRate = Number(speed.value) || 1;
      video.addEventListener('ratechange', syncSpeed);
    }
    var poster = local(s.thumbnail_url);
    if (poster && video.getAttribute('poster') !== poster) video.setAttribute('poster', poster);
    if (s.width && s.height) document.documentElement.style.setProperty('--ar', String(s.width / s.height));
    if (!source) attach(s);
    else if (source === 'mp4-wait' && s.mp4_url) attach(s);
    badge.hidden = !s.live;
    toolbar.hidden = false;
  }

  function attach(s) {
    var playlist = local(s.playback_url), mp4 = local(s.mp4_url);
    if (playlist && window.Hls && window.Hls.isSupported()) {
      source = 'hls';
      hls = new window.Hls({
        // The policy has no worker-src: demux on the main thread.
        enableWorker: false,
        lowLatencyMode: false,
        // Live: start a segment behind the edge (a recording in progress
        // is watched as it is made), and catch up if it falls far behind.
        liveSyncDurationCount: 1,
        liveMaxLatencyDurationCount: 5,
        // hls.js sets the element's duration only once its buffer queue is
        // idle: a short forward buffer lets that happen after a few
        // segments instead of after the whole video (measured: 2 s before
        // the duration was known through 50 ms of latency per request).
        maxBufferLength: 6,
        maxMaxBufferLength: 30,
        manifestLoadingMaxRetry: 6,
        levelLoadingMaxRetry: 6,
        fragLoadingMaxRetry: 6
      });
      hls.on(window.Hls.Events.ERROR, function (_, d) {
        if (!d.fatal || !hls) return;
        if (d.type === window.Hls.ErrorTypes.MEDIA_ERROR) {
          hls.recoverMediaError();
        } else if (d.type === window.Hls.ErrorTypes.NETWORK_ERROR) {
          var h = hls;
          setTimeout(function () { if (hls === h) h.startLoad(); }, 1000);
        } else if (mp4) {
          hls.destroy(); hls = null;
          source = 'mp4'; video.src = mp4;
        }
      });
      hls.loadSource(playlist);
      hls.attachMedia(video);
    } else if (playlist && video.canPlayType('application/vnd.apple.mpegurl')) {
      source = 'native';
      video.src = playlist;
    } else if (mp4) {
      source = 'mp4';
      video.src = mp4;
    } else {
      // Live, but this browser can play neither HLS nor MSE: wait for the MP4.
      source = 'mp4-wait';
      note.textContent = 'This browser plays the recording once it has finished.';
    }
  }

  function syncSpeed() {
    if (!video) return;
    var r = String(video.playbackRate);
    if (Array.prototype.some.call(speed.options, function (o) { return o.value === r; })) speed.value = r;
  }

  speed.addEventListener('change', function () {
    if (!video) return;
    video.playbackRate = video.defaultPlaybackRate = Number(speed.value) || 1;
  });

  // --- keyboard ---------------------------------------------------------------

  function seekBy(d) {
    var end = isFinite(video.duration) ? video.duration
      : (video.seekable.length ? video.seekable.end(video.seekable.length - 1) : video.currentTime);
    video.currentTime = Math.min(Math.max(video.currentTime + d, 0), end);
  }

  function toggleFullscreen() {
    var p = document.getElementById('player');
    if (document.fullscreenElement) document.exitFullscreen();
    else if (p && p.requestFullscreen) p.requestFullscreen();
  }

  // Capture phase, and the default prevented: a focused <video> would
  // otherwise toggle on space a second time through its own controls.
  window.addEventListener('keydown', function (e) {
    if (!video || e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target;
    if (t && t.closest && t.closest('input, select, textarea, button, [contenteditable]')) return;
    var k = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    switch (k) {
      case ' ': case 'k': if (video.paused) video.play().catch(function () {}); else video.pause(); break;
      case 'ArrowLeft': seekBy(-5); break;
      case 'ArrowRight': seekBy(5); break;
      case 'j': seekBy(-10); break;
      case 'l': seekBy(10); break;
      case 'f': toggleFullscreen(); break;
      case 'm': video.muted = !video.muted; break;
      default: return;
    }
    e.preventDefault();
    e.stopPropagation();
  }, true);

  // --- state ------------------------------------------------------------------

  function render(s) {
    body.dataset.status = s.status;
    if (s.title && heading.textContent !== s.title) { heading.textContent = s.title; document.title = s.title; }
    if (s.duration_ms && s.status === 'ready') {
      var parts = meta.textContent.split(' · ').filter(function (p) { return p && !/^\d+(:\d\d)+$/.test(p); });
      meta.textContent = [clock(s.duration_ms)].concat(parts).join(' · ');
    }
    var playable = s.playback_url && (s.status === 'ready' || s.live);
    // A live player keeps playing through processing: the playlist is the
    // same, and gains its end.
    if (playable || (video && s.status === 'processing')) {
      ensurePlayer(s);
      if (s.status === 'processing') {
        note.replaceChildren('Finishing the recording… ',
          el('span', { 'data-testid': 'share-progress' }, [Math.round((s.progress || 0) * 100) + '%']));
      } else if (source !== 'mp4-wait') {
        note.textContent = '';
      }
      var mp4 = local(s.mp4_url);
      if (mp4) { download.setAttribute('href', mp4); download.hidden = false; } else { download.hidden = true; }
    } else {
      panelFor(s);
    }
  }

  function terminal(s) { return s.status === 'ready' || s.status === 'errored'; }

  function poll() {
    fetch('/v/' + encodeURIComponent(id) + '/status.json', { cache: 'no-store', credentials: 'omit' })
      .then(function (r) {
        if (r.status === 410) { showDeleted(); return null; }
        if (!r.ok) throw new Error('status ' + r.status);
        return r.json();
      })
      .then(function (s) {
        if (!s || gone) return;
        render(s);
        if (!terminal(s)) setTimeout(poll, POLL_MS);
      })
      .catch(function () { if (!gone) setTimeout(poll, POLL_MS * 2); });
  }

  poll();
})();
