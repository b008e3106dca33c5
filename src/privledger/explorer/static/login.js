// Optional: sign the challenge with an injected EIP-1193 wallet (personal_sign). Nothing else.
(function () {
  var button = document.getElementById("wallet");
  var provider = window.ethereum;
  if (!button || !provider) return;
  button.hidden = false;
  button.addEventListener("click", async function () {
    var message = document.getElementById("challenge").value;
    try {
      var accounts = await provider.request({ method: "eth_requestAccounts" });
      var hex = "0x" + Array.from(new TextEncoder().encode(message))
        .map(function (b) { return b.toString(16).padStart(2, "0"); }).join("");
      var signature = await provider.request({ method: "personal_sign", params: [hex, accounts[0]] });
      document.getElementById("address").value = accounts[0];
      document.getElementById("signature").value = signature;
      button.form.submit();
    } catch (err) {
      alert("The wallet did not sign: " + (err && err.message ? err.message : err));
    }
  });
})();
