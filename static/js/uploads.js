// Uploads with a progress bar per file (R-DOC-2). Without this script every form[data-upload]
// is a plain multipart form; with it, files picked (the ordinary file button, WCAG 2.5.7) or
// dropped on the form are sent one request each, the file as the body (X-File-Name, the CSRF
// token in X-CSRFToken), so each shows its own progress, and the page
// reloads to list them once all are done. The files of one go share a batch id: the firm gets
// one Inbox+ item for the upload, not one per file.
(function () {
  "use strict";

  function strings() {
    var t = document.getElementById("upload-strings");
    return {
      done: (t && t.dataset.done) || "Uploaded",
      failed: (t && t.dataset.failed) || "Failed",
      tooLarge: (t && t.dataset.tooLarge) || "Too large",
    };
  }

  function batchId() {
    var bytes = new Uint8Array(12);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  function sendOne(form, file, batch, list, text) {
    return new Promise(function (resolve) {
      var row = document.createElement("li");
      var label = document.createElement("span");
      label.textContent = file.name;
      var bar = document.createElement("progress");
      bar.max = 100;
      bar.value = 0;
      bar.setAttribute("aria-label", file.name);
      var state = document.createElement("span");
      state.className = "state";
      row.append(label, " ", bar, " ", state);
      list.appendChild(row);
      var token = form.querySelector("input[name=csrf_token]");
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      // the file itself is the body: nothing for the server to unpack, streamed straight to disk
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.setRequestHeader("X-Upload", "xhr");
      xhr.setRequestHeader("X-File-Name", encodeURIComponent(file.name));
      xhr.setRequestHeader("X-Upload-Batch", batch);
      if (token) xhr.setRequestHeader("X-CSRFToken", token.value);
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) bar.value = Math.round((e.loaded / e.total) * 100);
      });
      xhr.addEventListener("load", function () {
        var ok = xhr.status >= 200 && xhr.status < 300;
        bar.value = ok ? 100 : bar.value;
        state.textContent = ok ? text.done : xhr.status === 413 ? text.tooLarge : text.failed;
        row.className = ok ? "ok" : "failed";
        resolve(ok);
      });
      xhr.addEventListener("error", function () {
        state.textContent = text.failed;
        row.className = "failed";
        resolve(false);
      });
      xhr.send(file);
    });
  }

  function sendAll(form, files) {
    if (!files.length) return;
    var list = form.querySelector("[data-progress]");
    var text = strings();
    var batch = batchId();
    var button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    var chain = Promise.resolve([]);
    Array.prototype.forEach.call(files, function (file) {
      chain = chain.then(function (results) {
        return sendOne(form, file, batch, list, text).then(function (ok) { return results.concat([ok]); });
      });
    });
    chain.then(function (results) {
      if (button) button.disabled = false;
      if (results.every(Boolean)) window.location.reload();
    });
  }

  function enhance(form) {
    var zone = form.querySelector("[data-dropzone]");
    var input = form.querySelector("input[type=file]");
    var hint = form.querySelector("[data-drop-hint]");
    if (hint) hint.hidden = false;
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      sendAll(form, input.files);
    });
    if (!zone) return;
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (e) { e.preventDefault(); zone.classList.add("dragging"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () { zone.classList.remove("dragging"); });
    });
    zone.addEventListener("drop", function (e) {
      e.preventDefault();
      sendAll(form, e.dataTransfer.files);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-upload]").forEach(enhance);
  });
})();
