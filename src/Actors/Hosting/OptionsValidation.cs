using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Serve.Actors.Hosting;

/// <summary>Validates options with a function that lists every problem, so start-up fails with all of them at once.</summary>
public sealed class ProblemListValidator<T>(Func<T, IReadOnlyList<string>> validate) : IValidateOptions<T>
    where T : class
{
    public ValidateOptionsResult Validate(string? name, T options)
    {
        var problems = validate(options);
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}

public static class OptionsRegistration
{
    /// <summary>Binds a configuration section, validates it with <paramref name="validate"/>, and checks at start-up.</summary>
    public static IServiceCollection AddValidatedOptions<T>(this IServiceCollection services, string section, Func<T, IReadOnlyList<string>> validate)
        where T : class
    {
        services.AddOptions<T>().BindConfiguration(section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<T>>(new ProblemListValidator<T>(validate));
        return services;
    }
}
