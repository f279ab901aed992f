/* Inside the embed iframe: tell the parent page how tall the gallery is, so the
   iframe can fit its content. Only a number is sent; nothing is read back. */
(function () {
  "use strict";
  if (window.parent === window) {
    return;
  }
  var lastHeight = -1;
  function reportHeight() {
    var height = Math.ceil(document.body.getBoundingClientRect().height);
    if (height !== lastHeight) {
      lastHeight = height;
      window.parent.postMessage({ type: "hashtag-monitor:height", height: height }, "*");
    }
  }
  if ("ResizeObserver" in window) {
    new ResizeObserver(reportHeight).observe(document.body);
  }
  window.addEventListener("load", reportHeight);
  reportHeight();
})();
