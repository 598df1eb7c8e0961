// simple-peer's prebuilt browser bundle has the package's own API (typed by @types/simple-peer).
declare module "simple-peer/simplepeer.min.js" {
  import SimplePeer from "simple-peer";
  export default SimplePeer;
}
