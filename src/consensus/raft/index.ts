export { RaftNode } from './node.js';
export { applyRaftReady } from './driver.js';
export type { RaftHost } from './driver.js';
export type { RaftStatus } from './node.js';
export { decodeRaftMessage, encodeRaftMessage, raftMessageSchema } from './messages.js';
export type * from './types.js';
