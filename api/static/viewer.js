// An interactive view of one GLB face: drag to orbit, wheel/pinch to zoom; arrow keys and +/- when focused.
import {
  Box3, Color, DirectionalLight, HemisphereLight, PerspectiveCamera, Scene, SRGBColorSpace, Spherical, Vector3,
  WebGLRenderer, GLTFLoader, OrbitControls,
} from "./vendor/three.js";

const BACKGROUND = 0x1c2229;
const KEY_STEP_RADIANS = Math.PI / 18;
const KEY_ZOOM = 1.15;

export class FaceViewer {
  constructor(canvas) {
    this.canvas = canvas;
    this.renderer = new WebGLRenderer({ canvas, antialias: true });
    this.renderer.outputColorSpace = SRGBColorSpace;
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
    this.scene = new Scene();
    this.scene.background = new Color(BACKGROUND);
    this.camera = new PerspectiveCamera(30, 1, 0.001, 10);
    this.scene.add(new HemisphereLight(0xffffff, 0x404040, 1.6));
    this.keyLight = new DirectionalLight(0xffffff, 1.8);
    this.camera.add(this.keyLight);    // a head lamp: the side you look at is always lit
    this.keyLight.position.set(0.3, 0.4, 1);
    this.scene.add(this.camera);
    this.controls = new OrbitControls(this.camera, canvas);
    this.controls.addEventListener("change", () => this.render());
    this.loader = new GLTFLoader();
    this.model = null;
    canvas.tabIndex = 0;
    canvas.addEventListener("keydown", (event) => this.onKey(event));
    new ResizeObserver(() => this.resize()).observe(canvas);
  }

  async show(url) {
    const gltf = await this.loader.loadAsync(url);
    this.clear();
    this.model = gltf.scene;
    this.scene.add(this.model);
    this.frame(this.model);
    this.render();
  }

  clear() {
    if (!this.model) return;
    this.scene.remove(this.model);
    this.model.traverse((node) => {
      node.geometry?.dispose();
      for (const material of [node.material].flat().filter(Boolean)) {
        material.map?.dispose();
        material.dispose();
      }
    });
    this.model = null;
    this.render();
  }

  frame(object) {
    const box = new Box3().setFromObject(object);
    const size = box.getSize(new Vector3()).length();
    const center = box.getCenter(new Vector3());
    const distance = size / (2 * Math.tan((this.camera.fov * Math.PI) / 360)) * 1.1;
    this.camera.position.copy(center).add(new Vector3(0, 0, distance));
    this.camera.near = distance / 100;
    this.camera.far = distance * 100;
    this.camera.updateProjectionMatrix();
    this.controls.target.copy(center);
    this.controls.minDistance = distance / 4;
    this.controls.maxDistance = distance * 4;
    this.controls.update();
  }

  onKey(event) {
    const turns = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    const zooms = { "+": 1 / KEY_ZOOM, "=": 1 / KEY_ZOOM, "-": KEY_ZOOM, _: KEY_ZOOM };
    if (event.key in turns) this.orbit(...turns[event.key].map((step) => step * KEY_STEP_RADIANS));
    else if (event.key in zooms) this.orbit(0, 0, zooms[event.key]);
    else return;
    event.preventDefault();
  }

  orbit(azimuth, polar, zoom = 1) {
    const offset = this.camera.position.clone().sub(this.controls.target);
    const spherical = new Spherical().setFromVector3(offset);
    spherical.theta -= azimuth;
    spherical.phi = Math.min(Math.max(spherical.phi + polar, 0.05), Math.PI - 0.05);
    spherical.radius = Math.min(Math.max(spherical.radius * zoom, this.controls.minDistance),
      this.controls.maxDistance);
    this.camera.position.copy(this.controls.target).add(new Vector3().setFromSpherical(spherical));
    this.controls.update();
  }

  resize() {
    const width = this.canvas.clientWidth;
    const height = this.canvas.clientHeight;
    if (!width || !height) return;
    this.renderer.setSize(width, height, false);
    this.camera.aspect = width / height;
    this.camera.updateProjectionMatrix();
    this.render();
  }

  render() {
    this.renderer.render(this.scene, this.camera);
  }
}
