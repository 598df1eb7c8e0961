// Vite imports WGSL sources as strings.
declare module "*.wgsl?raw" {
  const source: string;
  export default source;
}
