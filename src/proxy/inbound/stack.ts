// The inbound stack (mesh → app): the layers a request arriving on the tunnel passes through, in order.
import type { HttpExchange, TcpExchange } from '../exchange.ts';
import { forwardHttpToApp, forwardTcpToApp, type AppContext } from '../layers/forward/index.ts';
import { inboundPort, type InboundPorts } from '../layers/inbound-port/index.ts';
import { stripMeshHeaders } from '../layers/mesh-headers/index.ts';
import { stack, type Step } from '../stack.ts';

export function buildInboundHttp(ports: InboundPorts, context: AppContext): Step<HttpExchange> {
  return stack(ports, [
    inboundPort(), // 404 WEFT_ERR_INBOUND_PORT unless the workload serves the port
    stripMeshHeaders, // weft-* headers are for proxies only
    forwardHttpToApp(context),
  ]);
}

export function buildInboundTcp(ports: InboundPorts, context: AppContext): Step<TcpExchange> {
  return stack(ports, [
    inboundPort(),
    forwardTcpToApp(context),
  ]);
}
