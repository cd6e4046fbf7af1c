// An interactive view of one GLB face. It opens at the head's pose in the photo (or straight on); drag to orbit
// (gently, and never round to the inside of the mask), wheel/pinch to zoom; arrow keys, +/- and Home when focused.
// Looks: the texture, the bare shape (grey, shaded) or the wireframe; an optional slow swing.
import {
  BackSide, Box3, Color, DirectionalLight, HemisphereLight, Mesh, MeshBasicMaterial, MeshStandardMaterial,
  PerspectiveCamera, Scene, SRGBColorSpace, Spherical, Vector3, WebGLRenderer, GLTFLoader, OrbitControls,
} from "./vendor/three.js";

const BACKGROUND = 0x1c2229;
const DEG = Math.PI / 180;
const KEY_STEP = 10 * DEG;
const KEY_ZOOM = 1.15;
const ROTATE_SPEED = 0.35;            // OrbitControls' default (1) turned ~120° per 150 px
const MAX_AZIMUTH = 95 * DEG;         // past this the open back of the mask shows
const MAX_TILT = 55 * DEG;            // above and below the face: never under the chin to upside down
const SPIN_AMPLITUDE = 50 * DEG;
const SPIN_PERIOD_S = 8;
// The face's yaw and pitch (degrees, as result.json gives them) -> where the camera must be to see it as the photo.
const POSE_SIGN = { yaw: -1, pitch: 1, roll: 1 };

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
    this.controls = this.makeControls(canvas);
    this.loader = new GLTFLoader();
    this.model = null;
    this.look = "texture";
    this.pose = { yaw: 0, pitch: 0, roll: 0 };
    this.usePhotoPose = true;
    this.spinning = null;
    canvas.tabIndex = 0;
    canvas.addEventListener("keydown", (event) => this.onKey(event));
    new ResizeObserver(() => this.resize()).observe(canvas);
  }

  makeControls(canvas) {
    const controls = new OrbitControls(this.camera, canvas);
    canvas.style.touchAction = "";       // OrbitControls sets "none": the page's CSS decides (tap to engage)
    controls.rotateSpeed = ROTATE_SPEED;
    controls.enablePan = false;
    controls.minAzimuthAngle = -MAX_AZIMUTH;
    controls.maxAzimuthAngle = MAX_AZIMUTH;
    controls.minPolarAngle = Math.PI / 2 - MAX_TILT;
    controls.maxPolarAngle = Math.PI / 2 + MAX_TILT;
    controls.addEventListener("change", () => this.render());
    controls.addEventListener("start", () => this.setSpin(false));
    return controls;
  }

  async show(url, pose = { yaw: 0, pitch: 0 }) {
    const gltf = await this.loader.loadAsync(url);
    this.clear();
    this.model = gltf.scene;
    this.prepare(this.model);
    this.scene.add(this.model);
    this.pose = { yaw: pose.yaw || 0, pitch: pose.pitch || 0, roll: pose.roll || 0 };
    this.frame(this.model);
    this.setLook(this.look);
    this.reset();
  }

  // Each mesh keeps its own material for "texture" and gets a grey one for "shape". The inside of the mask stays
  // dark: face3d's GLB carries its own back shell (material "<name>_back"); any other GLB gets a dark twin drawn on
  // its back faces, so a look past the rim never shows the texture inside out.
  prepare(model) {
    const meshes = [];
    model.traverse((node) => { if (node.isMesh) meshes.push(node); });
    const isBack = (mesh) => /_back$/.test(mesh.material?.name ?? "");
    const hasShell = meshes.some(isBack);
    for (const mesh of meshes) {
      if (isBack(mesh)) {
        mesh.userData.isBack = true;
        continue;
      }
      mesh.userData.looks = {
        texture: mesh.material,
        shape: new MeshStandardMaterial({ color: 0xc8c8c8, roughness: 0.75, metalness: 0 }),
        wireframe: new MeshBasicMaterial({ color: 0x9fd3ff, wireframe: true }),
      };
      if (hasShell) continue;
      const back = new Mesh(mesh.geometry, new MeshBasicMaterial({ color: 0x2a2f36, side: BackSide }));
      back.userData.isBack = true;
      mesh.add(back);
    }
  }

  setLook(look) {
    this.look = look;
    this.model?.traverse((node) => {
      if (node.userData.looks) node.material = node.userData.looks[look];
      if (node.userData.isBack) node.visible = look !== "wireframe";
    });
    this.canvas.dataset.look = look;
    this.render();
  }

  setPhotoPose(on) {
    this.usePhotoPose = on;
    this.reset();
  }

  startView() {
    if (!this.usePhotoPose) return { azimuth: 0, polar: Math.PI / 2 };
    const clamp = (value, limit) => Math.min(Math.max(value, -limit), limit);
    return { azimuth: clamp(POSE_SIGN.yaw * this.pose.yaw * DEG, MAX_AZIMUTH),
      polar: Math.PI / 2 - clamp(POSE_SIGN.pitch * this.pose.pitch * DEG, MAX_TILT) };
  }

  reset() {
    const { azimuth, polar } = this.startView();
    this.camera.up.set(0, 1, 0);
    this.place(azimuth, polar, this.distance);
    if (this.usePhotoPose) this.tilt(POSE_SIGN.roll * this.pose.roll * DEG);
  }

  // The head's roll in the photo: the camera's up turned about the line of sight (OrbitControls keeps it while
  // orbiting, so the horizon stays where the photo had it).
  tilt(angle) {
    const sight = this.controls.target.clone().sub(this.camera.position).normalize();
    this.camera.up.set(0, 1, 0).applyAxisAngle(sight, angle);
    this.controls.update();
    this.render();
  }

  place(azimuth, polar, radius) {
    const spherical = new Spherical(radius, polar, azimuth);
    this.camera.position.copy(this.controls.target).add(new Vector3().setFromSpherical(spherical));
    this.controls.update();
    this.render();
  }

  // The camera as the tests read it: degrees off straight-on (right of the face positive), above it, and distance.
  state() {
    const spherical = new Spherical().setFromVector3(this.camera.position.clone().sub(this.controls.target));
    const roll = Math.atan2(-this.camera.up.x, this.camera.up.y) / DEG;
    return { azimuthDeg: spherical.theta / DEG, elevationDeg: 90 - spherical.phi / DEG, rollDeg: roll,
      distance: spherical.radius / (this.distance || 1), look: this.look, spinning: Boolean(this.spinning) };
  }

  setSpin(on) {
    if (!on) {
      if (this.spinning) cancelAnimationFrame(this.spinning.frame);
      this.spinning = null;
      this.onSpinChange?.(false);
      return;
    }
    const started = performance.now();
    const { polar } = this.startView();
    const radius = this.camera.position.distanceTo(this.controls.target);
    const step = (now) => {
      const phase = ((now - started) / 1000 / SPIN_PERIOD_S) * 2 * Math.PI;
      this.place(SPIN_AMPLITUDE * Math.sin(phase), polar, radius);
      this.spinning.frame = requestAnimationFrame(step);
    };
    this.spinning = { frame: requestAnimationFrame(step) };
    this.onSpinChange?.(true);
  }

  clear() {
    this.setSpin(false);
    if (!this.model) return;
    this.scene.remove(this.model);
    this.model.traverse((node) => {
      node.geometry?.dispose();
      const materials = node.userData.looks ? Object.values(node.userData.looks) : [node.material];
      for (const material of materials.flat().filter(Boolean)) {
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
    const narrow = Math.min(1, this.camera.aspect || 1);      // a tall view: fit the width, not the height
    const distance = (size / (2 * Math.tan((this.camera.fov * Math.PI) / 360))) * (1.1 / narrow);
    this.distance = distance;
    this.camera.near = distance / 100;
    this.camera.far = distance * 100;
    this.camera.updateProjectionMatrix();
    this.controls.target.copy(center);
    this.controls.minDistance = distance / 4;
    this.controls.maxDistance = distance * 4;
  }

  onKey(event) {
    const turns = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    const zooms = { "+": 1 / KEY_ZOOM, "=": 1 / KEY_ZOOM, "-": KEY_ZOOM, _: KEY_ZOOM };
    this.setSpin(false);
    if (event.key in turns) this.orbit(...turns[event.key].map((step) => step * KEY_STEP));
    else if (event.key in zooms) this.orbit(0, 0, zooms[event.key]);
    else if (event.key === "Home") this.reset();
    else return;
    event.preventDefault();
  }

  orbit(azimuth, polar, zoom = 1) {
    const offset = this.camera.position.clone().sub(this.controls.target);
    const spherical = new Spherical().setFromVector3(offset);
    spherical.theta = Math.min(Math.max(spherical.theta - azimuth, -MAX_AZIMUTH), MAX_AZIMUTH);
    spherical.phi = Math.min(Math.max(spherical.phi + polar, this.controls.minPolarAngle),
      this.controls.maxPolarAngle);
    spherical.radius = Math.min(Math.max(spherical.radius * zoom, this.controls.minDistance),
      this.controls.maxDistance);
    this.place(spherical.theta, spherical.phi, spherical.radius);
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
