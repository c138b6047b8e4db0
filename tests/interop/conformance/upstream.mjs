// A conformance upstream: an MCP server written with the official
// TypeScript SDK (low-level `Server` + `StreamableHTTPServerTransport`)
// that implements what the conformance package's server scenarios call:
// tools test_*, resources test://…, prompts test_*, logging, completion,
// resumable SSE (SEP-1699) and DNS-rebinding protection.
//   node upstream.mjs PORT      (0 picks one; prints "listening <port>")
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import {
  CallToolRequestSchema,
  CompleteRequestSchema,
  ElicitResultSchema,
  CreateMessageResultSchema,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  ReadResourceRequestSchema,
  SetLevelRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';

const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==';
const WAV = 'UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=';
const EMPTY = { type: 'object', properties: {} };
const text = (t) => ({ content: [{ type: 'text', text: t }] });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const TOOLS = [
  { name: 'test_simple_text', description: 'Returns one text block', inputSchema: EMPTY },
  { name: 'test_image_content', description: 'Returns an image', inputSchema: EMPTY },
  { name: 'test_audio_content', description: 'Returns audio', inputSchema: EMPTY },
  { name: 'test_embedded_resource', description: 'Returns an embedded resource', inputSchema: EMPTY },
  { name: 'test_multiple_content_types', description: 'Returns text, image and a resource', inputSchema: EMPTY },
  { name: 'test_tool_with_logging', description: 'Logs while it runs', inputSchema: EMPTY },
  { name: 'test_tool_with_progress', description: 'Reports progress', inputSchema: EMPTY },
  { name: 'test_error_handling', description: 'Always fails', inputSchema: EMPTY },
  { name: 'test_reconnection', description: 'Closes its SSE stream mid-call (SEP-1699)', inputSchema: EMPTY },
  { name: 'test_sampling', description: 'Asks the client for an LLM completion', inputSchema: { type: 'object', properties: { prompt: { type: 'string' } }, required: ['prompt'] } },
  { name: 'test_elicitation', description: 'Asks the user for input', inputSchema: { type: 'object', properties: { message: { type: 'string' } }, required: ['message'] } },
  { name: 'test_elicitation_sep1034_defaults', description: 'Elicitation with defaults (SEP-1034)', inputSchema: EMPTY },
  { name: 'test_elicitation_sep1330_enums', description: 'Elicitation with enums (SEP-1330)', inputSchema: EMPTY },
  {
    name: 'json_schema_2020_12_tool',
    description: 'JSON Schema 2020-12 input (SEP-1613)',
    inputSchema: {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      $defs: { address: { type: 'object', properties: { street: { type: 'string' }, city: { type: 'string' } } } },
      properties: { name: { type: 'string' }, address: { $ref: '#/$defs/address' } },
      additionalProperties: false,
    },
  },
];

const ELICIT_DEFAULTS = {
  type: 'object',
  properties: {
    name: { type: 'string', description: 'User name', default: 'John Doe' },
    age: { type: 'integer', description: 'User age', default: 30 },
    score: { type: 'number', description: 'User score', default: 95.5 },
    status: { type: 'string', description: 'User status', enum: ['active', 'inactive', 'pending'], default: 'active' },
    verified: { type: 'boolean', description: 'Verification status', default: true },
  },
  required: [],
};

const ELICIT_ENUMS = {
  type: 'object',
  properties: {
    untitledSingle: { type: 'string', description: 'One option', enum: ['option1', 'option2', 'option3'] },
    titledSingle: {
      type: 'string',
      description: 'One option, titled',
      oneOf: [
        { const: 'value1', title: 'First Option' },
        { const: 'value2', title: 'Second Option' },
        { const: 'value3', title: 'Third Option' },
      ],
    },
    legacyEnum: { type: 'string', description: 'Legacy titled', enum: ['opt1', 'opt2', 'opt3'], enumNames: ['Option One', 'Option Two', 'Option Three'] },
    untitledMulti: { type: 'array', description: 'Several options', minItems: 1, maxItems: 3, items: { type: 'string', enum: ['option1', 'option2', 'option3'] } },
    titledMulti: {
      type: 'array',
      description: 'Several options, titled',
      minItems: 1,
      maxItems: 3,
      items: { anyOf: [{ const: 'value1', title: 'First Choice' }, { const: 'value2', title: 'Second Choice' }, { const: 'value3', title: 'Third Choice' }] },
    },
  },
  required: [],
};

async function elicit(extra, message, requestedSchema) {
  try {
    const r = await extra.sendRequest({ method: 'elicitation/create', params: { mode: 'form', message, requestedSchema } }, ElicitResultSchema);
    return text(`Elicitation completed: action=${r.action}, content=${JSON.stringify(r.content ?? {})}`);
  } catch (e) {
    return text(`Elicitation not supported or error: ${e.message}`);
  }
}

function mcpServer(transports) {
  const server = new Server(
    { name: 'drio-conformance-upstream', version: '1.0.0' },
    { capabilities: { tools: { listChanged: true }, resources: { subscribe: true, listChanged: true }, prompts: { listChanged: true }, logging: {}, completions: {} } },
  );
  const log = (level, data) => server.notification({ method: 'notifications/message', params: { level, logger: 'conformance-upstream', data } }).catch(() => {});

  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: TOOLS }));
  server.setRequestHandler(CallToolRequestSchema, async (req, extra) => {
    const args = req.params.arguments ?? {};
    switch (req.params.name) {
      case 'test_simple_text':
        return text('This is a simple text response for testing.');
      case 'test_image_content':
        return { content: [{ type: 'image', data: PNG, mimeType: 'image/png' }] };
      case 'test_audio_content':
        return { content: [{ type: 'audio', data: WAV, mimeType: 'audio/wav' }] };
      case 'test_embedded_resource':
        return { content: [{ type: 'resource', resource: { uri: 'test://embedded-resource', mimeType: 'text/plain', text: 'This is an embedded resource content.' } }] };
      case 'test_multiple_content_types':
        return {
          content: [
            { type: 'text', text: 'Multiple content types test:' },
            { type: 'image', data: PNG, mimeType: 'image/png' },
            { type: 'resource', resource: { uri: 'test://mixed-content-resource', mimeType: 'application/json', text: JSON.stringify({ test: 'data', value: 123 }) } },
          ],
        };
      case 'test_tool_with_logging':
        for (const step of ['Tool execution started', 'Tool processing data', 'Tool execution completed']) {
          await extra.sendNotification({ method: 'notifications/message', params: { level: 'info', data: step } });
          await sleep(50);
        }
        return text('Tool with logging executed successfully');
      case 'test_tool_with_progress': {
        const progressToken = req.params._meta?.progressToken ?? 0;
        for (const progress of [0, 50, 100]) {
          await extra.sendNotification({ method: 'notifications/progress', params: { progressToken, progress, total: 100, message: `Completed step ${progress} of 100` } });
          await sleep(50);
        }
        return text(String(progressToken));
      }
      case 'test_error_handling':
        return { isError: true, content: [{ type: 'text', text: 'This tool intentionally returns an error for testing' }] };
      case 'test_reconnection': {
        transports.get(extra.sessionId)?.closeSSEStream(extra.requestId);
        await sleep(100);
        return text('Reconnection test completed successfully. If you received this, the client properly reconnected after stream closure.');
      }
      case 'test_sampling':
        try {
          const r = await extra.sendRequest(
            { method: 'sampling/createMessage', params: { messages: [{ role: 'user', content: { type: 'text', text: args.prompt } }], maxTokens: 100 } },
            CreateMessageResultSchema,
          );
          return text(`LLM response: ${r.content?.text ?? 'No response'}`);
        } catch (e) {
          return text(`Sampling not supported or error: ${e.message}`);
        }
      case 'test_elicitation':
        return elicit(extra, args.message, { type: 'object', properties: { response: { type: 'string', description: "User's response" } }, required: ['response'] });
      case 'test_elicitation_sep1034_defaults':
        return elicit(extra, 'Please review and update the form fields with defaults', ELICIT_DEFAULTS);
      case 'test_elicitation_sep1330_enums':
        return elicit(extra, 'Please select options from the enum fields', ELICIT_ENUMS);
      case 'json_schema_2020_12_tool':
        return text(`JSON Schema 2020-12 tool called with: ${JSON.stringify(args)}`);
      default:
        return { isError: true, content: [{ type: 'text', text: `Unknown tool ${req.params.name}` }] };
    }
  });

  const RESOURCES = {
    'test://static-text': { name: 'static-text', mimeType: 'text/plain', text: 'This is the content of the static text resource.' },
    'test://static-binary': { name: 'static-binary', mimeType: 'image/png', blob: PNG },
    'test://watched-resource': { name: 'watched-resource', mimeType: 'text/plain', text: 'Watched resource content' },
  };
  server.setRequestHandler(ListResourcesRequestSchema, async () => ({
    resources: Object.entries(RESOURCES).map(([uri, r]) => ({ uri, name: r.name, mimeType: r.mimeType })),
  }));
  server.setRequestHandler(ListResourceTemplatesRequestSchema, async () => ({
    resourceTemplates: [{ uriTemplate: 'test://template/{id}/data', name: 'template', mimeType: 'application/json', description: 'A template with an id' }],
  }));
  server.setRequestHandler(ReadResourceRequestSchema, async (req) => {
    const { uri } = req.params;
    const m = /^test:\/\/template\/([^/]+)\/data$/.exec(uri);
    if (m) return { contents: [{ uri, mimeType: 'application/json', text: JSON.stringify({ id: m[1], templateTest: true, data: `Data for ID: ${m[1]}` }) }] };
    const r = RESOURCES[uri];
    if (!r) throw new Error(`Resource not found: ${uri}`);
    return { contents: [{ uri, mimeType: r.mimeType, ...(r.blob ? { blob: r.blob } : { text: r.text }) }] };
  });
  server.setRequestHandler(SubscribeRequestSchema, async (req) => {
    log('info', `Subscribed to resource: ${req.params.uri}`);
    return {};
  });
  server.setRequestHandler(UnsubscribeRequestSchema, async (req) => {
    log('info', `Unsubscribed from resource: ${req.params.uri}`);
    return {};
  });

  const PROMPTS = [
    { name: 'test_simple_prompt', description: 'A prompt without arguments' },
    { name: 'test_prompt_with_arguments', description: 'A prompt with arguments', arguments: [{ name: 'arg1', required: true }, { name: 'arg2', required: true }] },
    { name: 'test_prompt_with_embedded_resource', description: 'A prompt with a resource', arguments: [{ name: 'resourceUri', required: true }] },
    { name: 'test_prompt_with_image', description: 'A prompt with an image' },
  ];
  server.setRequestHandler(ListPromptsRequestSchema, async () => ({ prompts: PROMPTS }));
  server.setRequestHandler(GetPromptRequestSchema, async (req) => {
    const a = req.params.arguments ?? {};
    const user = (content) => ({ role: 'user', content });
    switch (req.params.name) {
      case 'test_simple_prompt':
        return { messages: [user({ type: 'text', text: 'This is a simple prompt for testing.' })] };
      case 'test_prompt_with_arguments':
        return { messages: [user({ type: 'text', text: `Prompt with arguments: arg1='${a.arg1}', arg2='${a.arg2}'` })] };
      case 'test_prompt_with_embedded_resource':
        return {
          messages: [
            user({ type: 'resource', resource: { uri: a.resourceUri, mimeType: 'text/plain', text: 'Embedded resource content for testing.' } }),
            user({ type: 'text', text: 'Please process the embedded resource above.' }),
          ],
        };
      case 'test_prompt_with_image':
        return { messages: [user({ type: 'image', data: PNG, mimeType: 'image/png' }), user({ type: 'text', text: 'Please analyze the image above.' })] };
      default:
        throw new Error(`Unknown prompt ${req.params.name}`);
    }
  });
  server.setRequestHandler(SetLevelRequestSchema, async (req) => {
    log('info', `Log level set to: ${req.params.level}`);
    return {};
  });
  server.setRequestHandler(CompleteRequestSchema, async () => ({ completion: { values: [], total: 0, hasMore: false } }));
  return server;
}

/** An in-memory event store, so a client can resume a stream (SEP-1699). */
function eventStore() {
  const events = [];
  return {
    async storeEvent(streamId, message) {
      const eventId = `${streamId}::${String(events.length).padStart(8, '0')}`;
      events.push({ eventId, streamId, message });
      return eventId;
    },
    async replayEventsAfter(lastEventId, { send }) {
      const streamId = lastEventId.split('::')[0];
      for (const e of events) {
        if (e.streamId === streamId && e.eventId > lastEventId && Object.keys(e.message).length > 0) await send(e.eventId, e.message);
      }
      return streamId;
    },
  };
}

const LOCAL = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);
const hostname = (authority) => {
  try {
    return new URL(`http://${authority}`).hostname;
  } catch {
    return '';
  }
};

/** DNS-rebinding protection: Host and Origin must name this machine. */
function localRequest(req) {
  if (!LOCAL.has(hostname(req.headers.host ?? ''))) return false;
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return LOCAL.has(new URL(origin).hostname);
  } catch {
    return false;
  }
}

const transports = new Map();
const http = createServer(async (req, res) => {
  const fail = (status, message) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null }));
  };
  if (!req.url.startsWith('/mcp')) return fail(404, 'Not found');
  if (!localRequest(req)) return fail(403, 'Forbidden: Host or Origin is not local');
  let body;
  if (req.method === 'POST') {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    try {
      body = JSON.parse(Buffer.concat(chunks).toString() || 'null');
    } catch {
      return fail(400, 'Parse error');
    }
  }
  const sid = req.headers['mcp-session-id'];
  let transport = sid ? transports.get(sid) : undefined;
  if (!transport) {
    const initializing = req.method === 'POST' && !sid && (Array.isArray(body) ? body : [body]).some((m) => m?.method === 'initialize');
    if (!initializing) return fail(sid ? 404 : 400, sid ? 'Session not found' : 'Bad Request: no valid session ID');
    transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      eventStore: eventStore(),
      retryInterval: 1000,
      onsessioninitialized: (id) => transports.set(id, transport),
    });
    transport.onclose = () => transport.sessionId && transports.delete(transport.sessionId);
    await mcpServer(transports).connect(transport);
  }
  try {
    await transport.handleRequest(req, res, body);
  } catch (e) {
    if (!res.headersSent) fail(500, `Internal error: ${e.message}`);
  }
});
http.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  console.log(`listening ${http.address().port}`);
});
