// The gallery: pages of tiles built from the embedded JSON, so the page never holds
// every image at once. Items are [shared, suffix, bytes, width, height, thumb, url?,
// caption?] (url "": no link, the image is in a shard):
// a key is the previous key's first `shared` characters plus `suffix`.
(() => {
  "use strict";
  const source = document.getElementById("gallery-data");
  const grid = document.getElementById("grid");
  const more = document.getElementById("more");
  const status = document.getElementById("gallery-status");
  if (!source || !grid || !more || !status) return;
  const data = JSON.parse(source.textContent);
  const items = data.items;
  const keys = new Array(items.length);
  let previous = "";
  for (let i = 0; i < items.length; i++) {
    previous = previous.slice(0, items[i][0]) + items[i][1];
    keys[i] = previous;
  }
  const quote = (key) => key.split("/").map(encodeURIComponent).join("/");
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  const size = (n) => {
    let unit = 0;
    while (n >= 1024 && unit < units.length - 1) { n /= 1024; unit++; }
    return (unit === 0 ? String(n) : n.toFixed(n >= 100 ? 0 : 1)) + "\u00a0" + units[unit];
  };
  const thumbUrl = (thumb) => typeof thumb === "string" ? thumb
    : data.thumbBase + Math.floor(thumb / 1000) + "/" + thumb + "." + data.thumbExt;

  function tile(index) {
    const [, , bytes, width, height, thumb, url, caption] = items[index];
    const key = keys[index];
    const li = document.createElement("li");
    const linked = url !== "";  // "": a sample in a shard, no file of its own
    const link = document.createElement(linked ? "a" : "span");
    link.className = "tile";
    const href = linked ? url || data.base + quote(key) : "";
    if (linked) link.href = href;
    const img = document.createElement("img");
    img.loading = "lazy";
    img.decoding = "async";
    img.alt = caption || key;
    if (thumb || linked) img.src = thumb ? thumbUrl(thumb) : href;
    else li.classList.add("broken");
    const meta = document.createElement("span");
    meta.className = "meta";
    const name = document.createElement("span");
    name.className = "key";
    const text = document.createElement("bdi");  // the key's end (its file name) stays seen
    text.textContent = key;
    name.append(text);
    name.title = key;
    const facts = document.createElement("span");
    facts.className = "facts";
    const dims = width ? width + "\u00d7" + height + " \u00b7 " : "";
    facts.textContent = dims + size(bytes);
    if (!width && !thumb) {
      img.addEventListener("load", () => {
        if (img.naturalWidth) {
          facts.textContent = img.naturalWidth + "\u00d7" + img.naturalHeight + " \u00b7 " + size(bytes);
        }
      }, { once: true });
    }
    img.addEventListener("error", () => li.classList.add("broken"), { once: true });
    meta.append(name, facts);
    if (caption) {  // a URL table's caption column
      const words = document.createElement("span");
      words.className = "caption";
      words.textContent = caption;
      meta.append(words);
    }
    link.append(img, meta);
    li.append(link);
    return li;
  }

  let shown = 0;
  function nextPage() {
    const start = shown;
    const end = Math.min(shown + data.pageSize, items.length);
    const fragment = document.createDocumentFragment();
    for (let i = start; i < end; i++) fragment.append(tile(i));
    grid.append(fragment);
    shown = end;
    status.textContent = "Showing " + shown.toLocaleString("en") + " of "
      + items.length.toLocaleString("en") + " images";
    more.hidden = shown >= items.length;
    return start;
  }

  more.addEventListener("click", (event) => {
    const first = nextPage();
    if (event.detail === 0 && grid.children[first]) {  // keyboard: go to the new tiles
      grid.children[first].querySelector("a").focus();
    }
  });
  let watcher = null;
  window.addEventListener("scroll", () => {  // load on scroll once the reader scrolls
    if (watcher || !("IntersectionObserver" in window)) return;
    watcher = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting) && shown < items.length) {
        nextPage();
        watcher.unobserve(more);  // observing again reports whether it is still in view
        if (shown < items.length) watcher.observe(more);
      }
    }, { rootMargin: "600px" });
    watcher.observe(more);
  }, { passive: true });
  nextPage();
})();
