// The amp-relay TypeScript SDK: REST (AmpClient), WebSocket (AmpSocket) and message signing.
export {
  AmpApiError,
  AmpClient,
  type ClientOptions,
  type PendingList,
  type RegisterRequestBody,
  type Registration,
  type RouteBody,
} from './rest.js';
export {
  generateKeyPair,
  type PrivateKey,
  type PrivateKeyInput,
  type Signable,
  type SignedFields,
  signMessage,
} from './sign.js';
export { AmpSocket, type AmpSocketEvents, type ConnectedInfo, type SocketOptions } from './socket.js';
export type { Envelope, QueuedMessage, RouteResult, Security } from '../../proto/index.js';
