import { App, CfnParameter, SecretValue, Stack, aws_secretsmanager as secretsmanager } from 'aws-cdk-lib';
import { MqUser } from '../lib';
import { GenerationSettings, validateGeneratedPassword } from '../lib/private/validate';
import { activeMq } from './fixtures/brokers';

const LENGTH_RULE = 'but Amazon MQ accepts 12 to 250: set passwordLength between 12 and 250';
const PUNCTUATION_RULE = 'which Amazon MQ refuses in a password (none of , : =)';

describe('validateGeneratedPassword', () => {
  test.each<[string, GenerationSettings, string[]]>([
    ['passes 32 characters without punctuation', { passwordLength: 32, excludePunctuation: true }, []],
    ['passes punctuation without , : =', { passwordLength: 32, excludeCharacters: '=:,"\'\\' }, []],
    ['passes the limits 12 and 250', { passwordLength: 12, excludeCharacters: ',:=' }, []],
    ['passes 250', { passwordLength: 250, excludePunctuation: true }, []],
    [
      'fails 10 characters',
      { passwordLength: 10, excludePunctuation: true },
      [`passwordSecret S generates passwords of 10 characters (generateSecretString.passwordLength), ${LENGTH_RULE}`],
    ],
    [
      'fails 251 characters',
      { passwordLength: 251, excludePunctuation: true },
      [`passwordSecret S generates passwords of 251 characters (generateSecretString.passwordLength), ${LENGTH_RULE}`],
    ],
    [
      "fails Secrets Manager's default punctuation",
      { passwordLength: 32 },
      [
        `passwordSecret S may generate passwords with "," ":" "=", ${PUNCTUATION_RULE}: add them to ` +
          'generateSecretString.excludeCharacters (for example excludeCharacters: ",:="), or set excludePunctuation: true',
      ],
    ],
    [
      'fails punctuation that excludes only some of them, naming the rest',
      { passwordLength: 32, excludeCharacters: ',"' },
      [expect.stringContaining(`may generate passwords with ":" "=", ${PUNCTUATION_RULE}`)],
    ],
    [
      'fails both rules at once',
      { passwordLength: 8, excludePunctuation: false },
      [expect.stringContaining('8 characters'), expect.stringContaining('"," ":" "="')],
    ],
  ])('%s', (_case, settings, expected) => {
    expect(validateGeneratedPassword(settings, 'S')).toEqual(expected);
  });
});

describe('MqUser with a supplied secret of this app whose password Secrets Manager generates', () => {
  function newStack(): Stack {
    return new Stack(new App(), 'Stack', { env: { account: '111111111111', region: 'us-east-1' } });
  }

  function userWith(stack: Stack, passwordSecret: secretsmanager.ISecret): MqUser {
    return new MqUser(stack, 'User', { broker: activeMq(stack, 'Broker'), username: 'orders', passwordSecret });
  }

  test('fails at synth on passwordLength 10, naming the construct, the secret and the rule (issue 17)', () => {
    const stack = newStack();
    const secret = new secretsmanager.Secret(stack, 'Password', {
      generateSecretString: { passwordLength: 10, excludePunctuation: true },
    });
    expect(() => userWith(stack, secret)).toThrow(
      `MqUser Stack/User: passwordSecret Stack/Password generates passwords of 10 characters`,
    );
  });

  test('fails at synth on a plain new Secret(), whose punctuation may hold , : =', () => {
    const stack = newStack();
    const secret = new secretsmanager.Secret(stack, 'Password');
    expect(() => userWith(stack, secret)).toThrow(
      /passwordSecret Stack\/Password may generate passwords with "," ":" "="/,
    );
  });

  test('fails for a secret of another stack of the app too', () => {
    const app = new App();
    const keys = new Stack(app, 'Keys', { env: { account: '111111111111', region: 'us-east-1' } });
    const secret = new secretsmanager.Secret(keys, 'Password', {
      generateSecretString: { secretStringTemplate: '{}', generateStringKey: 'password', passwordLength: 11 },
    });
    const stack = new Stack(app, 'Stack', { env: { account: '111111111111', region: 'us-east-1' } });
    expect(() => userWith(stack, secret)).toThrow(/passwordSecret Keys\/Password generates passwords of 11 characters/);
  });

  test('accepts settings that keep the rules, a given value, an imported secret and settings behind a token', () => {
    const stack = newStack();
    const secrets: secretsmanager.ISecret[] = [
      new secretsmanager.Secret(stack, 'Excluded', { generateSecretString: { excludeCharacters: ',:=' } }),
      new secretsmanager.Secret(stack, 'Given', { secretStringValue: SecretValue.unsafePlainText('not checked') }),
      secretsmanager.Secret.fromSecretNameV2(stack, 'Imported', 'orders/mq-password'),
      new secretsmanager.Secret(stack, 'TokenLength', {
        generateSecretString: {
          passwordLength: new CfnParameter(stack, 'Length', { type: 'Number' }).valueAsNumber,
          excludePunctuation: true,
        },
      }),
      new secretsmanager.Secret(stack, 'TokenExcluded', {
        generateSecretString: { excludeCharacters: new CfnParameter(stack, 'ExcludedCharacters').valueAsString },
      }),
    ];
    secrets.forEach((passwordSecret, i) => {
      expect(
        () => new MqUser(stack, `User${i}`, { broker: activeMq(stack, `B${i}`), username: `u${i}x`, passwordSecret }),
      ).not.toThrow();
    });
  });
});
