@0xf4aea8ac93c4c879;
# The Pangea wire protocol: the single source of truth for every WebSocket frame between a
# browser tab (or headless worker), the coordinator (Node or edge) and, through the signaling
# relay, other tabs. One frame is one framed (unpacked) Cap'n Proto message whose root is
# `Message`.
#
# Evolution: Cap'n Proto's rules. New fields take the next ordinal; nothing is renumbered,
# retyped or removed. The first fields of `Tensor`, `TrainingBatch`, `GradientUpdate`,
# `Message` and the first enumerants of `DataType` and `MessageType` are the original contract
# (the seed's tensor.capnp); everything after them extends it.
#
# Integers that count time are milliseconds since the Unix epoch. Versions, lease ids and
# timestamps are UInt64 on the wire and must stay below 2^53 so JavaScript reads them exactly.

# ---------------------------------------------------------------------------------------------
# The original contract
# ---------------------------------------------------------------------------------------------

enum DataType {
  float32 @0;
  float16 @1;   # IEEE 754 binary16; decoded to float32
  int32 @2;     # labels
  int8 @3;      # quantized: value = q * Tensor.scale; decoded to float32
  uint8 @4;
}

struct Tensor {
  shape @0 :List(UInt32);
  dtype @1 :DataType;
  data @2 :Data;        # little-endian elements, exactly product(shape) of them
  # --- extensions
  scale @3 :Float32;    # int8 only: the per-tensor scale
  name @4 :Text;        # the parameter's name in the model's layout, e.g. "dense0.weight"
}

struct TrainingBatch {
  batchId @0 :Text;
  samples @1 :Tensor;   # [n, ...inputShape], float32
  labels @2 :Tensor;    # [n], int32 class indices
  metadata @3 :List(MetadataEntry);
  # --- extensions
  epoch @4 :UInt32;
  index @5 :UInt32;     # the batch's position in its epoch's seeded order
  offsets @6 :List(UInt32);  # data by reference: where the batch's samples are in the run's
                             # dataset shard (DataSource): sample indices for images, each
                             # window's first token for text. samples and labels are then absent.
}

struct MetadataEntry {
  key @0 :Text;
  value @1 :Text;
}

struct GradientUpdate {
  gradientId @0 :Text;
  gradients @1 :List(Tensor);   # one per parameter, in the model's parameter order
  loss @2 :Float32;             # mean training loss over the batch (the worker's claim)
  timestamp @3 :UInt64;
  nodeId @4 :Text;
  # --- extensions
  batchId @5 :Text;
  leaseId @6 :UInt64;
  baseVersion @7 :UInt64;       # the parameter version the worker started from
  sampleCount @8 :UInt32;
  encoding @9 :Encoding;
  kind @10 :UpdateKind;
  correct @11 :UInt32;          # correct predictions in the batch (the worker's claim)
  innerSteps @12 :UInt32;       # local SGD / DiLoCo: optimizer steps taken on the worker
  pieceHashes @13 :Data;        # set, with gradients empty: a declaration for reduction among
                                # peers (TrainingConfig.reduceGroup): the SHA-256 (32 bytes each)
                                # of each of the update's REDUCE_PIECES pieces, as fp32 bytes
}

enum MessageType {
  request @0;        # leaseRequest, or an opaque raw request
  response @1;       # trainingBatch, or an opaque raw response
  gradientSync @2;   # gradientUpdate
  heartbeat @3;      # heartbeat
  # --- extensions
  join @4;
  welcome @5;
  lease @6;
  parameters @7;
  ack @8;
  error @9;
  signal @10;
  leave @11;
  evaluation @12;
  parametersRequest @13;
  reducePlan @14;
  reducedPart @15;
}

struct Message {
  messageId @0 :Text;
  messageType @1 :MessageType;  # always agrees with the payload's variant (the codec checks)
  sender @2 :Text;              # a session id, or "coordinator"
  recipient @3 :Text;           # a session id, "coordinator", or "" for a broadcast
  payload :union {
    raw @4 :Data;               # the original opaque payload
    # --- extensions
    join @6 :Join;
    welcome @7 :Welcome;
    leaseRequest @8 :LeaseRequest;
    lease @9 :Lease;
    gradientUpdate @10 :GradientUpdate;
    parameters @11 :ParameterBroadcast;
    ack @12 :Ack;
    error @13 :Error;
    heartbeat @14 :Heartbeat;
    signal @15 :Signal;
    leave @16 :Leave;
    trainingBatch @17 :TrainingBatch;
    evaluation @18 :EvaluationReport;
    parametersRequest @19 :ParametersRequest;
    reducePlan @20 :ReducePlan;
    reducedPart @21 :ReducedPart;
  }
  timestamp @5 :UInt64;
}

# ---------------------------------------------------------------------------------------------
# Extensions: the protocol
# ---------------------------------------------------------------------------------------------

enum Encoding {
  fp32 @0;
  fp16 @1;
  int8 @2;           # per-tensor scale
}

enum UpdateKind {
  gradient @0;         # d(loss)/d(params), averaged over sampleCount samples
  parameterDelta @1;   # local SGD / DiLoCo: params_before - params_after, after innerSteps
}

# A tab or headless worker asks to take part in a run.
struct Join {
  runId @0 :Text;             # "" lets the coordinator pick an active run
  sessionToken @1 :Text;      # from an earlier Welcome: resumes that session after a reconnect
  client @2 :ClientInfo;
  encodings @3 :List(Encoding);   # update encodings this worker can produce
  protocolVersion @4 :UInt16;
  evaluates @5 :Bool;         # it can take evaluation leases (Lease.heldOut)
  displayName @6 :Text;       # the name the visitor chose for the leaderboard ("" = anonymous)
  peers @7 :Bool;             # it can fetch and serve parameter frames over WebRTC
}

struct ClientInfo {
  kind @0 :Text;              # "browser" or "headless"
  adapter @1 :Text;           # GPU adapter description
  softwareFallback @2 :Bool;  # e.g. SwiftShader
  userAgent @3 :Text;
}

struct Welcome {
  runId @0 :Text;
  sessionId @1 :Text;
  sessionToken @2 :Text;
  model @3 :ModelSpec;
  version @4 :UInt64;
  parameters @5 :List(Tensor);   # a checkpoint's parameters, in the model's parameter order; empty
                                 # on a join (the session pulls them with its first lease)
  training @6 :TrainingConfig;
  heartbeatMs @7 :UInt32;
  maxFrameBytes @8 :UInt32;      # the largest frame the coordinator accepts from this session
  data @9 :DataSource;           # the run's dataset shard: leases name batches in it by offsets
  iceServers @10 :List(IceServer);  # STUN/TURN servers for WebRTC between sessions (none needed
                                    # between sessions on one machine or network)
}

# One STUN or TURN server address, as RTCIceServer takes it ("stun:host:3478", "turn:host?transport=tcp").
struct IceServer {
  url @0 :Text;
  username @1 :Text;
  credential @2 :Text;
}

# Where a contributor fetches the run's dataset shard (once; it may cache it by hash) and how it
# checks the bytes before training on them.
struct DataSource {
  name @0 :Text;                 # "mnist", "shakespeare", ...
  url @1 :Text;                  # absolute path on the coordinator's origin, or a full URL
  sha256 @2 :Text;               # lowercase hex of the shard's bytes
  bytes @3 :UInt64;
}

struct ModelSpec {
  name @0 :Text;
  inputShape @1 :List(UInt32);
  layers @2 :List(Layer);
  loss @3 :Loss;
  seed @4 :UInt32;               # parameter initialization seed
  transformer @5 :Transformer;   # set for a decoder-only GPT (inputShape is then [contextLength]
                                 # and layers empty); unset for a stack of dense layers
}

# A GPT-2-style decoder: token and learned position embeddings, `layers` pre-LayerNorm blocks
# (causal self-attention with `heads` heads, an MLP 4 × width wide with GELU), a final LayerNorm
# and a head tied to the token embedding. Tokens are integers below vocabSize.
struct Transformer {
  vocabSize @0 :UInt32;
  contextLength @1 :UInt32;
  layers @2 :UInt32;
  heads @3 :UInt32;
  width @4 :UInt32;
  dropout @5 :Float32;           # drop probability after the embedding, each attention and MLP
}

struct Layer {
  kind :union {
    dense @0 :DenseLayer;
    flatten @1 :Void;
  }
}

struct DenseLayer {
  inputs @0 :UInt32;
  outputs @1 :UInt32;
  activation @2 :Activation;
}

enum Activation {
  none @0;
  relu @1;
  gelu @2;
}

enum Loss {
  softmaxCrossEntropy @0;
  meanSquaredError @1;
}

enum Strategy {
  synchronous @0;
  asynchronous @1;
  localSgd @2;
}

enum LocalOptimizer {
  sgd @0;
  momentum @1;
  adamw @2;
}

struct TrainingConfig {
  strategy @0 :Strategy;
  batchSize @1 :UInt32;
  innerSteps @2 :UInt32;         # local SGD: steps per lease
  localOptimizer @3 :LocalOptimizer;
  learningRate @4 :Float32;      # local optimizer's learning rate
  momentum @5 :Float32;
  weightDecay @6 :Float32;
  updateEncoding @7 :Encoding;   # the encoding the coordinator asks for
  reduceGroup @8 :UInt32;        # >= 2: a session that joined with peers declares its update
                                 # (GradientUpdate.pieceHashes) and reduces it with a group of
                                 # peers (ReducePlan) instead of sending it whole; 0: off
}

struct LeaseRequest {
  maxBatches @0 :UInt32;
}

struct Lease {
  leaseId @0 :UInt64;
  batch @1 :TrainingBatch;
  baseVersion @2 :UInt64;        # the parameter version to train from
  deadline @3 :UInt64;           # the update must arrive before this instant
  innerSteps @4 :UInt32;
  heldOut @5 :HeldOut;           # set: an evaluation lease, answered by an EvaluationReport on
                                 # baseVersion (its batch is then empty)
  parametersFrom @6 :Text;       # set: fetch baseVersion's parameter frame from this session over
                                 # WebRTC (signal it through the coordinator) instead of waiting
                                 # for the coordinator to send it
  parametersSha256 @7 :Text;     # lowercase hex SHA-256 of that frame's bytes: check before use
}

# An evaluation lease's work, on the parameters of the lease's baseVersion: the loss and correct
# predictions on held-out data in the run's shard, or a text sample.
struct HeldOut {
  offsets @0 :List(UInt32);      # test images, or the first tokens of validation windows
  sampleTokens @1 :UInt32;       # > 0: generate this many tokens after `prompt` instead
  prompt @2 :Text;
  seed @3 :UInt32;               # the sampling stream's seed
}

# What a contributor measured for an evaluation lease. Each part of an evaluation goes to two
# sessions; the coordinator keeps a result only when two of them agree.
struct EvaluationReport {
  leaseId @0 :UInt64;
  version @1 :UInt64;
  loss @2 :Float64;              # the sum over the offsets of each one's mean loss, in nats
  correct @3 :UInt32;            # correct predictions: images, or next characters
  sample @4 :Text;               # the generated text, the prompt included
}

struct ParameterBroadcast {
  version @0 :UInt64;
  union {
    full @1 :Void;               # tensors are the parameters
    deltaFrom @2 :UInt64;        # tensors are params(version) - params(deltaFrom)
  }
  tensors @3 :List(Tensor);
}

struct Ack {
  ref @0 :Text;                  # the acknowledged message's id
  leaseId @1 :UInt64;
  version @2 :UInt64;            # the run's version after the update was taken
}

enum ErrorCode {
  internal @0;
  malformedFrame @1;
  frameTooLarge @2;
  unsupportedMessage @3;
  notJoined @4;
  unknownRun @5;
  runNotActive @6;
  unknownLease @7;
  leaseExpired @8;
  staleVersion @9;
  shapeMismatch @10;
  nonFinite @11;
  normTooLarge @12;
  unauthorized @13;
  quarantined @14;
  rateLimited @15;
  protocolVersion @16;
  claimMismatch @17;             # an update's claim (samples, inner steps) is not what its lease handed out
  alreadyJoined @18;             # a connection speaks for one session: a second join is refused
  notIntroduced @19;             # a signal to a session the coordinator has not introduced
  reduceFallback @20;            # the reduction a declaration took part in failed: send the
                                 # update itself (ref: the declaration's message id)
}

struct Error {
  code @0 :ErrorCode;
  message @1 :Text;              # for a person to read
  ref @2 :Text;                  # the refused message's id, when there was one
  retryAfterMs @3 :UInt32;
}

struct Heartbeat {
  sentAt @0 :UInt64;
  samplesPerSecond @1 :Float32;
}

# WebRTC signaling relay: an opaque payload (SDP offer/answer, ICE candidate) from the
# Message's sender to its recipient, both sessions of the same run.
struct Signal {
  payload @0 :Data;
}

struct Leave {
  reason @0 :Text;
}

# A session could not get a version's parameter frame from the peer its lease named: the
# coordinator sends the frame itself. A bad hash counts against the peer (see peers.ts).
struct ParametersRequest {
  version @0 :UInt64;
  peer @1 :Text;
  failure @2 :PeerFailure;
}

enum PeerFailure {
  unreachable @0;    # no WebRTC connection (no ICE route, the peer left)
  timeout @1;        # connected, but the frame did not arrive in time
  badHash @2;        # the bytes did not match the lease's parametersSha256
  missing @3;        # the peer said it does not hold that version
}

# ---------------------------------------------------------------------------------------------
# Reduction among peers (TrainingConfig.reduceGroup)
# ---------------------------------------------------------------------------------------------

# The coordinator's plan for a group of declared updates of one version. A group of g members
# splits the update into g parts (whole pieces, see shared/src/reduce.ts); member i reduces part
# i (fetching that part of every other member's update over WebRTC, checking it against their
# piece hashes, combining all g with `aggregator`) and sends it, and member i+1 (mod g) reduces
# the same part and sends only its hash: the coordinator takes the part when the two agree.
struct ReducePlan {
  group @0 :UInt64;
  version @1 :UInt64;
  members @2 :List(ReduceMember);   # in the order every reduction combines them
  deadline @3 :UInt64;              # parts must arrive before this, or the group falls back
  aggregator @4 :Aggregator;
  trim @5 :Float32;                 # trimmedMean: the fraction cut from each end
}

struct ReduceMember {
  session @0 :Text;
  leaseId @1 :UInt64;
  weight @2 :Float64;               # its weight in the mean (samples)
  pieceHashes @3 :Data;             # as it declared them
}

enum Aggregator {
  mean @0;
  trimmedMean @1;
  median @2;
}

# An owner's reduction of one part of a group's updates.
struct ReducedPart {
  group @0 :UInt64;
  part @1 :UInt32;
  data @2 :Data;                    # the reducing owner: the part, fp32; the checking owner: empty
  sha256 @3 :Text;                  # lowercase hex SHA-256 of the part's fp32 bytes
  badBytes @4 :Text;                # members (comma-separated) whose bytes did not match their hashes
  missing @5 :Text;                 # members (comma-separated) whose bytes did not come in time
}
