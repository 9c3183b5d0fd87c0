// Passkeys (R-SEC-15). Without this script, or in a browser without WebAuthn, the passkey parts of
// the page stay hidden and the password form is all there is. With it: on the login page, the
// "Sign in with a passkey" button and the browser's autofill (mediation "conditional"); on the
// passkey page, adding one. Options come from the server as JSON with base64url fields; answers
// go back the same way, with the page's CSRF token in X-CSRFToken.
(function () {
  "use strict";

  function toBytes(value) {
    var base64 = value.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) base64 += "=";
    var binary = window.atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return window.btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function creationOptions(json) {
    var options = Object.assign({}, json);
    options.challenge = toBytes(json.challenge);
    options.user = Object.assign({}, json.user, { id: toBytes(json.user.id) });
    options.excludeCredentials = (json.excludeCredentials || []).map(function (c) {
      return Object.assign({}, c, { id: toBytes(c.id) });
    });
    return options;
  }

  function requestOptions(json) {
    var options = Object.assign({}, json);
    options.challenge = toBytes(json.challenge);
    options.allowCredentials = (json.allowCredentials || []).map(function (c) {
      return Object.assign({}, c, { id: toBytes(c.id) });
    });
    return options;
  }

  function credentialJSON(credential) {
    if (typeof credential.toJSON === "function") return credential.toJSON();
    var r = credential.response;
    var response = { clientDataJSON: toBase64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toBase64url(r.attestationObject);
      response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
    } else {
      response.authenticatorData = toBase64url(r.authenticatorData);
      response.signature = toBase64url(r.signature);
      if (r.userHandle) response.userHandle = toBase64url(r.userHandle);
    }
    return {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      response: response,
      clientExtensionResults: credential.getClientExtensionResults(),
      authenticatorAttachment: credential.authenticatorAttachment || null,
    };
  }

  function csrfToken() {
    var input = document.querySelector("input[name=csrf_token]");
    return input ? input.value : "";
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body || {}),
    }).then(function (response) {
      return response.json().then(
        function (data) { return { ok: response.ok, data: data }; },
        function () { return { ok: false, data: {} }; }
      );
    });
  }

  function showError(root, message) {
    var box = root.querySelector("[data-passkey-error]");
    if (!box) return;
    box.textContent = message;
    box.hidden = !message;
  }

  function failure(root, answer) {
    var error = answer && answer.data && answer.data.error;
    showError(root, (error && error.message) || root.dataset.cancelled);
  }

  function supported() {
    return !!(window.PublicKeyCredential && navigator.credentials && window.fetch);
  }

  // --- signing in ----------------------------------------------------------------------------

  function signIn(root, publicKey, extra) {
    return navigator.credentials.get(Object.assign({ publicKey: requestOptions(publicKey) }, extra))
      .then(function (credential) {
        if (!credential) return null;
        return post(root.dataset.verify, { credential: credentialJSON(credential), next: root.dataset.next });
      })
      .then(function (answer) {
        if (!answer) return;
        if (answer.ok && answer.data.redirect) window.location.assign(answer.data.redirect);
        else failure(root, answer);
      });
  }

  function setUpLogin(root) {
    if (!supported()) return;
    root.hidden = false;
    var pending = null; // the autofill request, aborted when the button is used

    function autofill() {
      if (typeof PublicKeyCredential.isConditionalMediationAvailable !== "function") return;
      PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
        if (!available) return;
        post(root.dataset.options).then(function (answer) {
          if (!answer.ok) return;
          pending = new AbortController();
          signIn(root, answer.data.publicKey, { mediation: "conditional", signal: pending.signal })
            .catch(function () { /* aborted, or the user chose the password */ });
        });
      });
    }

    root.querySelector("[data-passkey-button]").addEventListener("click", function () {
      showError(root, "");
      if (pending) pending.abort();
      pending = null;
      post(root.dataset.options).then(function (answer) {
        if (!answer.ok) return failure(root, answer);
        return signIn(root, answer.data.publicKey, {});
      }).catch(function () { showError(root, root.dataset.cancelled); });
    });
    autofill();
  }

  // --- adding one ----------------------------------------------------------------------------

  function setUpRegister(root) {
    if (!supported()) {
      root.hidden = false;
      root.querySelector("[data-passkey-form]").hidden = true;
      showError(root, root.dataset.unsupported);
      return;
    }
    root.hidden = false;
    var form = root.querySelector("[data-passkey-form]");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      showError(root, "");
      var name = form.querySelector("input[name=name]").value;
      post(root.dataset.options).then(function (answer) {
        if (!answer.ok) return failure(root, answer);
        return navigator.credentials.create({ publicKey: creationOptions(answer.data.publicKey) })
          .then(function (credential) {
            return post(root.dataset.verify, { credential: credentialJSON(credential), name: name });
          })
          .then(function (result) {
            if (result.ok && result.data.redirect) window.location.assign(result.data.redirect);
            else failure(root, result);
          });
      }).catch(function () { showError(root, root.dataset.cancelled); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var login = document.querySelector("[data-passkey-login]");
    if (login) setUpLogin(login);
    var register = document.querySelector("[data-passkey-register]");
    if (register) setUpRegister(register);
  });
})();
