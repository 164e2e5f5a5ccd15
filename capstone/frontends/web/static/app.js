// capstone web app: the only script. A photo that cannot load (offline, a dead link) gives its
// place to the image's captions, so every tile always says what it shows.
"use strict";

function showCaptions(img) {
  const tile = img.closest(".tile");
  if (tile) tile.classList.add("no-photo");
}

for (const img of document.querySelectorAll("img.photo")) {
  if (img.complete && img.naturalWidth === 0) {
    showCaptions(img); // failed before this script ran
  } else {
    img.addEventListener("error", () => showCaptions(img));
  }
}
