// The fields an access log line can carry (MeshConfig accessLog.fields chooses among them, in order).
export const ACCESS_LOG_FIELDS = [
  'time',
  'duration_ms',
  'direction',
  'protocol',
  'method',
  'authority',
  'path',
  'status',
  'grpc_status',
  'bytes_received',
  'bytes_sent',
  'route',
  'upstream_service',
  'upstream_endpoint',
  'upstream_host',
  'upstream_service_time_ms',
  'retries',
  'caller',
  'source',
  'user_agent',
  'trace_id',
  'weft_reason',
  'weft_reason_text',
] as const;

export type AccessLogField = (typeof ACCESS_LOG_FIELDS)[number];
