/* hashtag-monitor gallery embed: add
     <script src="https://GALLERY-HOST/embed.js" data-tag="ceaday21" async></script>
   where the gallery should appear. It inserts an iframe of the gallery (no
   cookies, nothing loaded from elsewhere) and resizes it to its content.
   Optional attributes: data-tag, data-platform, data-title. */
(function () {
  "use strict";
  var EMBED_PAGE = "gallery/embed";
  var MESSAGE_TYPE = "hashtag-monitor:height";
  var script = document.currentScript;
  if (!script || !script.src) {
    return;
  }
  var target = new URL(EMBED_PAGE, script.src);
  var tag = script.getAttribute("data-tag");
  var platform = script.getAttribute("data-platform");
  if (tag) {
    target.searchParams.set("tag", tag);
  }
  if (platform) {
    target.searchParams.set("platform", platform);
  }
  var frame = document.createElement("iframe");
  frame.src = target.href;
  frame.title = script.getAttribute("data-title") || "Messages of support";
  frame.setAttribute("referrerpolicy", "no-referrer");
  frame.style.width = "100%";
  frame.style.minHeight = "12rem";
  frame.style.border = "0";
  frame.style.display = "block";
  script.parentNode.insertBefore(frame, script.nextSibling);
  window.addEventListener("message", function (event) {
    var data = event.data;
    if (event.source !== frame.contentWindow || !data || data.type !== MESSAGE_TYPE) {
      return;
    }
    var height = Number(data.height);
    if (isFinite(height) && height >= 0) {
      frame.style.height = Math.min(Math.ceil(height), 200000) + "px";
    }
  });
})();
