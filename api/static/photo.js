// The source photo of a job: shown with a clickable box on each face, cut into the tab thumbnails and into the
// "photo" half of the side-by-side view. Boxes are placed in percent of the photo, so they follow its size.
const $ = (id) => document.getElementById(id);
const CROP_MARGIN = 0.25;     // room around the detected box, so the whole head shows

export class FaceCrops {
  constructor(onPick) {
    this.onPick = onPick;
    this.image = null;
    this.faces = [];
    this.selected = 0;
  }

  async load(url, faces) {
    this.faces = faces;
    this.image = null;
    $("face-boxes").replaceChildren();
    $("photo-figure").hidden = true;
    if (!url) return;
    const img = $("photo-image");
    img.src = url;
    try {
      await img.decode();
    } catch {
      return;
    }
    this.image = img;
    $("face-boxes").replaceChildren(...faces.map((face, i) => this.box(face, i)));
    $("photo-figure").hidden = false;
    this.select(this.selected);
  }

  box(face, i) {
    const [x0, y0, x1, y1] = face.bbox;
    const { naturalWidth: w, naturalHeight: h } = this.image;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "face-box";
    button.dataset.face = String(i);
    button.setAttribute("aria-label", `Show face ${i}`);
    Object.assign(button.style, {
      left: `${(100 * x0) / w}%`, top: `${(100 * y0) / h}%`,
      width: `${(100 * (x1 - x0)) / w}%`, height: `${(100 * (y1 - y0)) / h}%`,
    });
    button.addEventListener("click", () => this.onPick(i));
    return button;
  }

  select(index) {
    this.selected = index;
    for (const box of $("face-boxes").children) {
      box.setAttribute("aria-pressed", String(box.dataset.face === String(index)));
    }
  }

  // The face's square around its box, drawn to fill the canvas; false when there is no photo.
  drawInto(canvas, index, size = null) {
    const face = this.faces[index];
    if (!this.image || !face || !canvas) return false;
    const [x0, y0, x1, y1] = face.bbox;
    const side = Math.max(x1 - x0, y1 - y0) * (1 + 2 * CROP_MARGIN);
    const cx = (x0 + x1) / 2;
    const cy = (y0 + y1) / 2;
    if (size) {
      canvas.width = size[0];
      canvas.height = size[1];
    }
    const context = canvas.getContext("2d");
    const aspect = canvas.width / canvas.height;
    const cropW = aspect >= 1 ? side * aspect : side;
    const cropH = aspect >= 1 ? side : side / aspect;
    context.fillStyle = "#1c2229";
    context.fillRect(0, 0, canvas.width, canvas.height);
    context.drawImage(this.image, cx - cropW / 2, cy - cropH / 2, cropW, cropH, 0, 0, canvas.width, canvas.height);
    return true;
  }

  thumbInto(canvas, index) {
    if (this.drawInto(canvas, index)) canvas.classList.add("drawn");
  }
}
