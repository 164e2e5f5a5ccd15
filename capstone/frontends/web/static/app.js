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

// The photo form: describing a photo takes a second or more, so say the server is at work.
const photoForm = document.querySelector("form.photo");
if (photoForm) {
  const button = photoForm.querySelector("button[type=submit]");
  const label = button.textContent;
  const status = document.getElementById("status");
  photoForm.addEventListener("submit", () => {
    button.disabled = true;
    button.textContent = "Describing…";
    status.hidden = false;
  });
  // coming back to this page from the browser's history: the form is usable again
  window.addEventListener("pageshow", () => {
    button.disabled = false;
    button.textContent = label;
    status.hidden = true;
  });
}
