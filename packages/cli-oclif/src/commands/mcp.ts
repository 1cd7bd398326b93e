import { TetherCommand } from '../baseCommand.js';

export default class Mcp extends TetherCommand {
  static override summary = 'Serve the machines as Model Context Protocol tools on stdio (for Codex, Claude Code…).';
  static override description = `Runs an MCP server on stdin/stdout until stdin closes. Tools: machine_list, machine_check, exec_run, exec_start, exec_result, exec_logs, exec_watch, exec_cancel, exec_write, file_read, file_write, file_list, sync, gpu_status, gpu_wait — over every machine of the config file (and local). Each returns one JSON object as text, with the CLI's field names; a failure is a tool error whose text is {"error":{"code","message","hint"}}.

Add it to an agent's config: Codex (~/.codex/config.toml)
  [mcp_servers.tether]
  command = "tether"
  args = ["mcp"]
Claude Code: claude mcp add tether -- tether mcp`;
  static override examples = [
    { description: 'Serve the machines of the default config file', command: '<%= config.bin %> mcp' },
    { description: 'With another config file', command: '<%= config.bin %> mcp --config ~/work/tether.yaml' },
  ];

  async run(): Promise<void> {
    const { flags } = await this.parse(Mcp);
    this.useConfig(flags.config);
    const [{ createTetherMcpServer }, { StdioServerTransport }] = await Promise.all([import('../mcp/mcpServer.js'), import('@modelcontextprotocol/sdk/server/stdio.js')]);
    const { server, close } = createTetherMcpServer({
      machines: {
        ...(flags.config !== undefined ? { configPath: flags.config } : {}),
        cliRoot: this.config.root,
        cliName: this.config.name,
        packages: () => this.config.getPluginsList(),
        verbose: flags.verbose,
      },
      version: this.config.version,
    });
    const transport = new StdioServerTransport();
    const closed = new Promise<void>((resolve) => {
      server.server.onclose = () => resolve();
      process.stdin.once('end', () => resolve());
      process.once('SIGTERM', () => resolve());
      process.once('SIGINT', () => resolve());
    });
    await server.connect(transport);
    await closed;
    await close();
  }
}
