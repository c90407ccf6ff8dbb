namespace Serve.Archive;

/// <summary>An archive Serve will not use, with a message for the person who made it.</summary>
public sealed class ArchiveException(string message) : Exception(message);
