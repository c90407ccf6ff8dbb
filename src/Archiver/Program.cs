using Serve.Archiver;

return ArchiverCommand.Run(args, Console.Out, Console.Error, interactive: !Console.IsErrorRedirected);
