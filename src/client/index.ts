// The amp-relay TypeScript SDK: REST (AmpClient) and WebSocket (AmpSocket).
export {
  AmpApiError,
  AmpClient,
  type ClientOptions,
  type PendingList,
  type RegisterRequestBody,
  type Registration,
  type RouteBody,
} from './rest.js';
export { AmpSocket, type ConnectedInfo, type SocketOptions } from './socket.js';
