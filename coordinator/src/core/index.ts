// @pangea/coordinator/core: the runtime-agnostic coordinator, for the adapters (Node, the edge).
export { type AdmissionLimits, admissionFromEnv, DEFAULT_ADMISSION } from "./admission.ts";
export {
  type CommitGate,
  Coordinator,
  type CoordinatorOptions,
  HEARTBEAT_MS,
} from "./coordinator.ts";
export {
  type DatasetRecord,
  type DatasetStorage,
  datasetApi,
  MemoryDatasetStorage,
} from "./dataset-catalog.ts";
export type { DatasetSources, RunData } from "./datasets.ts";
export { DatasetImportError } from "@pangea/shared";
export {
  type EvaluationJob,
  type EvaluationResult,
  type Evaluator,
  runEvaluation,
  slicedEvaluator,
} from "./evaluation.ts";
export { createApi, liveEvents } from "./http-api.ts";
export {
  AdminFailureLimit,
  adminFailureLimit,
  CONTENT_SECURITY_POLICY,
  corsFor,
  edgeAddress,
  isAdmin,
  parseOrigins,
  SECURITY_HEADERS,
  StreamLimit,
  securityHeaders,
  socketOriginAllowed,
  UNAUTHORIZED,
} from "./surface.ts";
export { MemoryStore } from "./memory-store.ts";
export { ParameterSources, parseIceServers } from "./parameter-sources.ts";
export type * from "./ports.ts";
export { RunConfigError, type RunConfigInput } from "./run-config.ts";
